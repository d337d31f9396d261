"""One module per view: ``layout()`` and the view's callbacks."""
