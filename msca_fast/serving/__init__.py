"""The studio: a local web page to paint a layout, pick exemplars and see the output and the
attention live (``python -m msca_fast.studio``). :mod:`.engine` holds the model and calls the
synthesis API, :mod:`.payloads` checks request bodies, :mod:`.app` is the Starlette app, and
``assets/`` the page (plain HTML, CSS and JavaScript, no build step)."""
