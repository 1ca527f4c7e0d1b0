"""Authentication: sessions, wssvc tickets, SSO, anonymous and fake login."""
