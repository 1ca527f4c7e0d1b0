"""The few pages main_server renders itself: errors, each with a way back."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>etckit — {title}</title>
  <link rel="stylesheet" href="/static/etckit.css">
</head>
<body>
  <main class="card" id="error-page">
    <h1>{title}</h1>
    <p class="message">{message}</p>
    <p><a class="button" id="back" href="{href}">{link}</a></p>
  </main>
</body>
</html>
"""


def error_page(title: str, message: str, *, href: str = "/",
               link: str = "Back to the login page") -> str:
    return _PAGE.format(title=escape(title), message=escape(message), href=escape(href),
                        link=escape(link))
