"""The archive service: an HTTP API (FastAPI) over the catalog and the object store.

``services.archive.app.create_app`` builds the application; ``services.archive.commands``
adds ``dms serve archive`` and ``dms token ...`` to the command line.
"""
