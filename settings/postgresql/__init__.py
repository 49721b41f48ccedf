"""Django's PostgreSQL backend whose pool checks a connection before handing it out (see base.py)."""
