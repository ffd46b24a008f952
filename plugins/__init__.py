"""Datasource plugins behind one interface, with a connection cache."""
