"""What production serving needs beside the package: the gunicorn settings
(`gunicorn -c python:nurture.deploy.gunicorn_conf wsgi:app`). See docs/deploy.md."""
