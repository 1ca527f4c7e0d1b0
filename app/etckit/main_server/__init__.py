"""main_server: static pages, login, session cookies, wssvc assignment."""
