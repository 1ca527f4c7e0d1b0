"""wssvc: the browser's websocket, plot images over HTTPS, fan-out of replies."""
