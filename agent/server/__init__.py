"""``banana serve``: an HTTP API (OpenAI-compatible image edits + Banana's own) and a web page for editing by chat."""
