"""The low-code domain: organizations, apps, versions, data sources and queries."""
