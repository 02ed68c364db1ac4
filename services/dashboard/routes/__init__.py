"""The dashboard's HTTP routes, one module per resource. `ROUTERS` in services/dashboard/main.py
lists every router the app includes: a new resource is a module here (or beside it) and one line
there."""
