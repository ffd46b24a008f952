"""What the demo is made of: organizations, members, data sources, apps, queries, a
template, and the sample databases their queries read: an SQLite file in the directory
SQLite sources may read and, when the platform runs on PostgreSQL, a sample database
beside the platform's, read by a role that may read nothing else. No data source ever
gets the platform's own database or credentials.

``seed_demo`` writes it; ``demo_traffic`` reads the same constants to know whom to log in
as and which parameters each query takes, so the two never drift apart.
"""

import hashlib
import hmac
import os
import random
import sqlite3
from pathlib import Path

import psycopg2
from django.conf import settings
from psycopg2 import sql as pg_sql

import plugins

#: Every demo member has this password (they are demo accounts on loopback).
MEMBER_PASSWORD = "demo-password"
ADMIN_USERNAME = "admin"
DEFAULT_ADMIN_PASSWORD = "admin-demo-password"

ORGANIZATIONS = [
    {"slug": "acme", "name": "Acme Corp"},
    {"slug": "globex", "name": "Globex"},
    {"slug": "initech", "name": "Initech"},
]
ROLES = ("admin", "builder", "viewer")
ENVIRONMENTS = ("development", "staging", "production")

SAMPLE_DATABASE_NAME = "demo_sample.sqlite3"
#: Bumped when the sample database's content changes, so an old file is rebuilt.
SAMPLE_DATABASE_VERSION = 1
SAMPLE_CUSTOMERS = 3_000
SAMPLE_PRODUCTS = 200
SAMPLE_ORDERS = 30_000

#: Placeholder until ``demo_traffic`` points it at the endpoint it serves itself.
REST_PLACEHOLDER_BASE_URL = "http://127.0.0.1:9/"
REST_API_KEY_HEADER = "X-Api-Key"
REST_API_KEY = "demo-rest-api-key"

SQLITE_SOURCE_NAME = "Sample database (SQLite)"
REST_SOURCE_NAME = "Demo REST API"
POSTGRES_SOURCE_NAME = "Sample database (PostgreSQL)"
#: What earlier seeds called the PostgreSQL source (it had the platform's own credentials).
LEGACY_POSTGRES_SOURCE_NAME = "Platform database (PostgreSQL)"
#: The role of the PostgreSQL sample source: no superuser, may only read the sample.
SAMPLE_POSTGRES_ROLE = "tooljet_demo_reader"
REDIS_SOURCE_NAME = "Cache (Redis)"

TEMPLATE_SLUG = "customer-directory"


def username_for(organization_slug, role):
    return f"{organization_slug}-{role}"


def admin_password():
    return os.environ.get("DEMO_ADMIN_PASSWORD") or DEFAULT_ADMIN_PASSWORD


def sample_database_path():
    """The SQLite sample, inside the only directory SQLite sources may read."""
    return Path(plugins.conf.get("SQLITE_DIRECTORY")) / SAMPLE_DATABASE_NAME


def rest_endpoint_port():
    """Where demo_traffic serves the demo REST API: ``DEMO_REST_PORT``, which the settings
    allowlist (``make demo`` sets it), or any free port (then REST runs are refused)."""
    return getattr(settings, "DEMO_REST_PORT", 0) or 0


# ---------------------------------------------------------------------------- sample database

_FIRST_NAMES = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger"]
_LAST_NAMES = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie"]
_COUNTRIES = ["US", "DE", "FR", "IN", "BR", "JP", "GB", "NG", "CA", "AU"]
_CATEGORIES = ["hardware", "software", "services", "training", "support"]
ORDER_STATUSES = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]


def ensure_sample_database(path=None):
    """Create the sample database at ``path`` unless a complete one of this version is
    there. Built in a side file and renamed, so a reader never sees half of it.

    ``orders.status`` and ``customers.email`` are deliberately not indexed (the filters
    the optimizer should flag); ``orders.customer_id`` is not indexed either, which makes
    the per-customer correlated subquery slow. Returns (path, created)."""
    path = Path(path or sample_database_path())
    if _sample_database_is_complete(path):
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    building_path = path.with_name(path.name + f".building-{os.getpid()}")
    building_path.unlink(missing_ok=True)
    rng = random.Random(20240601)
    connection = sqlite3.connect(building_path)
    try:
        connection.executescript(
            """
            CREATE TABLE customers (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
                country TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE products (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
                price REAL NOT NULL);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
                total REAL NOT NULL, status TEXT NOT NULL, ordered_at TEXT NOT NULL);
            CREATE INDEX orders_product_id ON orders(product_id);
            CREATE TABLE sample_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """
        )
        customers = [
            (
                number,
                f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
                f"customer{number}@example.com",
                rng.choice(_COUNTRIES),
                f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            )
            for number in range(1, SAMPLE_CUSTOMERS + 1)
        ]
        products = [
            (number, f"Product {number}", rng.choice(_CATEGORIES), round(rng.uniform(5, 500), 2))
            for number in range(1, SAMPLE_PRODUCTS + 1)
        ]
        prices = {number: price for number, _, _, price in products}
        orders = []
        for number in range(1, SAMPLE_ORDERS + 1):
            product_id = rng.randint(1, SAMPLE_PRODUCTS)
            quantity = rng.randint(1, 5)
            orders.append((
                number,
                rng.randint(1, SAMPLE_CUSTOMERS),
                product_id,
                quantity,
                round(prices[product_id] * quantity, 2),
                rng.choice(ORDER_STATUSES),
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            ))
        with connection:
            connection.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", customers)
            connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
            connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", orders)
            connection.execute(
                "INSERT INTO sample_meta VALUES ('version', ?)", (str(SAMPLE_DATABASE_VERSION),)
            )
    finally:
        connection.close()
    os.replace(building_path, path)
    return path, True


def _sample_database_is_complete(path):
    if not path.exists():
        return False
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT value FROM sample_meta WHERE key = 'version'").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == str(SAMPLE_DATABASE_VERSION)


# ---------------------------------------------------------------------------- data sources

def sample_postgres_password():
    """The sample role's password: stable across seeds, unknown without ``SECRET_KEY``."""
    return hmac.new(settings.SECRET_KEY.encode(), b"demo-sample-reader", hashlib.sha256).hexdigest()[:32]


def ensure_postgres_sample():
    """(options, secrets) of the PostgreSQL sample source, or None when the platform does
    not run on PostgreSQL or its role may not create databases and roles.

    Creates (idempotently, under an advisory lock, on a connection of its own so a caller's
    transaction is not involved) ``settings.DEMO_SAMPLE_DATABASE`` beside the platform's
    database, fills it like the SQLite sample, and the login role ``SAMPLE_POSTGRES_ROLE``
    (no superuser, no CREATEDB/CREATEROLE) that may read it and nothing else."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        return None
    server = {"host": database.get("HOST") or "localhost", "port": int(database.get("PORT") or 5432)}
    name, role, password = settings.DEMO_SAMPLE_DATABASE, SAMPLE_POSTGRES_ROLE, sample_postgres_password()
    platform_login = {**server, "user": database.get("USER") or None, "password": database.get("PASSWORD") or None}
    try:
        maintenance = psycopg2.connect(**platform_login, dbname="postgres", connect_timeout=10)
        maintenance.autocommit = True
        try:
            with maintenance.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(hashtext('tooljet-demo-sample'))")
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cursor.fetchone() is None:
                    cursor.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(name)))
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
                verb = "ALTER" if cursor.fetchone() else "CREATE"
                cursor.execute(pg_sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                    "PASSWORD %s").format(pg_sql.Identifier(role)), [password])
                cursor.execute(pg_sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    pg_sql.Identifier(name), pg_sql.Identifier(role)))
                _fill_postgres_sample(psycopg2.connect(**platform_login, dbname=name, connect_timeout=10), role)
        finally:
            maintenance.close()  # ends the session, and the advisory lock with it
    except psycopg2.Error:
        return None
    return {**server, "database": name, "user": role}, {"password": password}


def _fill_postgres_sample(connection, role):
    """The SQLite sample's tables, generated in the server; SELECT granted to ``role``."""
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('sample_meta') IS NOT NULL")
            if not cursor.fetchone()[0]:
                cursor.execute(
                    "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, "
                    "country text NOT NULL);"
                    "CREATE TABLE products (id integer PRIMARY KEY, name text NOT NULL, category text NOT NULL, "
                    "price numeric(10, 2) NOT NULL);"
                    "CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL, "
                    "product_id integer NOT NULL, quantity integer NOT NULL, status text NOT NULL);"
                    "CREATE TABLE sample_meta (key text PRIMARY KEY, value text NOT NULL);"
                    "INSERT INTO customers SELECT g, 'Customer ' || g, 'customer' || g || '@example.com', "
                    "(%(countries)s::text[])[1 + g %% array_length(%(countries)s::text[], 1)] "
                    "FROM generate_series(1, %(customers)s) g;"
                    "INSERT INTO products SELECT g, 'Product ' || g, "
                    "(%(categories)s::text[])[1 + g %% array_length(%(categories)s::text[], 1)], 5 + g %% 495 "
                    "FROM generate_series(1, %(products)s) g;"
                    "INSERT INTO orders SELECT g, 1 + g * 7 %% %(customers)s, 1 + g * 13 %% %(products)s, "
                    "1 + g %% 5, (%(statuses)s::text[])[1 + g %% array_length(%(statuses)s::text[], 1)] "
                    "FROM generate_series(1, %(orders)s) g;"
                    "INSERT INTO sample_meta VALUES ('version', %(version)s);",
                    {"countries": _COUNTRIES, "categories": _CATEGORIES, "statuses": ORDER_STATUSES,
                     "customers": SAMPLE_CUSTOMERS, "products": SAMPLE_PRODUCTS, "orders": SAMPLE_ORDERS,
                     "version": str(SAMPLE_DATABASE_VERSION)},
                )
            cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cursor.execute(pg_sql.SQL("GRANT USAGE ON SCHEMA public TO {0}; "
                                      "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {0}").format(
                pg_sql.Identifier(role)))
    finally:
        connection.close()


def data_source_specs(postgres_sample=None):
    """[{"name", "kind", "options", "secrets"}] for every organization: the SQLite sample,
    the demo REST API, the PostgreSQL sample when ``postgres_sample`` is its (options,
    secrets), and Redis when ``REDIS_URL`` names one."""
    specs = [
        {"name": SQLITE_SOURCE_NAME, "kind": "sqlite",
         "options": {"path": str(sample_database_path())}, "secrets": {}},
        {"name": REST_SOURCE_NAME, "kind": "restapi",
         "options": {"base_url": REST_PLACEHOLDER_BASE_URL, "headers": {"Accept": "application/json"}},
         "secrets": {"headers": {"Accept": "application/json", REST_API_KEY_HEADER: REST_API_KEY}}},
    ]
    if postgres_sample:
        specs.append({"name": POSTGRES_SOURCE_NAME, "kind": "postgresql",
                      "options": postgres_sample[0], "secrets": postgres_sample[1]})
    if os.environ.get("REDIS_URL"):
        specs.append({"name": REDIS_SOURCE_NAME, "kind": "redis",
                      "options": {"url": os.environ["REDIS_URL"]}, "secrets": {}})
    return specs


# ---------------------------------------------------------------------------- queries and apps

def sql(text):
    """DataQuery.options of an SQL query (``:name`` parameters are bound by the plugin)."""
    return {"query": text}


def http(method, path, params=None, body=None):
    """DataQuery.options of a REST API query."""
    options = {"method": method, "path": path, "params": params or {}}
    if body is not None:
        options["body"] = body
    return options


#: Query name -> callable(rng) -> run parameters. demo_traffic sends these.
QUERY_PARAMETERS = {
    "customer_orders": lambda rng: {"customer_id": rng.randint(1, SAMPLE_CUSTOMERS)},
    "orders_by_status": lambda rng: {"status": rng.choice(ORDER_STATUSES)},
    "customer_by_email": lambda rng: {"email": f"customer{rng.randint(1, SAMPLE_CUSTOMERS)}@example.com"},
    "top_customers_slow": lambda rng: {"limit": rng.choice([200, 400, 600])},
    "search_products": lambda rng: {"pattern": f"%{rng.randint(1, 9)}%"},
    "create_ticket": lambda rng: {"subject": f"Ticket {rng.randint(1, 10_000)}"},
    "customers_in_country": lambda rng: {"country": rng.choice(_COUNTRIES)},
    "products_by_category": lambda rng: {"category": rng.choice(_CATEGORIES)},
    "order_by_id": lambda rng: {"order_id": rng.randint(1, SAMPLE_ORDERS)},
}

#: Queries that fail on purpose (a missing table, an endpoint answering 500).
FAILING_QUERY_NAMES = {"broken_invoices", "failing_endpoint"}
SLOW_QUERY_NAMES = {"top_customers_slow", "slow_endpoint"}


def _page(name, *components):
    return {"name": name, "handle": name.lower().replace(" ", "-"), "components": list(components)}


def _component(kind, name, **properties):
    return {"type": kind, "name": name, "properties": properties}


def app_specs(organization_slug, source_kinds):
    """[{"slug", "name", "definition", "queries": [(name, kind, options, on_load)]}] of one
    organization, for the data source kinds it has."""
    apps = [
        {
            "slug": f"{organization_slug}-customers",
            "name": "Customer directory",
            "definition": {"pages": [
                _page("Customers",
                      _component("table", "customersTable", data="{{queries.list_customers.data}}"),
                      _component("textinput", "emailInput", placeholder="email"),
                      _component("button", "findButton", text="Find", on_click="customer_by_email")),
                _page("Customer",
                      _component("table", "ordersTable", data="{{queries.customer_orders.data}}")),
            ]},
            "queries": [
                ("list_customers", "sqlite", sql(
                    "SELECT id, name, email, country FROM customers ORDER BY id LIMIT 20"), True),
                ("customer_orders", "sqlite", sql(
                    "SELECT o.id, p.name AS product, o.quantity, o.total, o.status FROM orders o "
                    "JOIN products p ON p.id = o.product_id WHERE o.customer_id = :customer_id "
                    "ORDER BY o.ordered_at DESC"), False),
                ("customer_by_email", "sqlite", sql(
                    "SELECT * FROM customers WHERE email = :email"), False),
            ],
        },
        {
            "slug": f"{organization_slug}-sales",
            "name": "Sales report",
            "definition": {"pages": [
                _page("Overview",
                      _component("chart", "revenueChart", data="{{queries.revenue_by_category.data}}"),
                      _component("table", "statusTable", data="{{queries.orders_by_status.data}}"),
                      _component("table", "topCustomers", data="{{queries.top_customers_slow.data}}")),
            ]},
            "queries": [
                ("revenue_by_category", "sqlite", sql(
                    "SELECT p.category, COUNT(*) AS orders, ROUND(SUM(o.total), 2) AS revenue "
                    "FROM orders o JOIN products p ON p.id = o.product_id "
                    "GROUP BY p.category ORDER BY revenue DESC"), True),
                ("orders_by_status", "sqlite", sql(
                    "SELECT id, customer_id, total, ordered_at FROM orders WHERE status = :status "
                    "ORDER BY total DESC LIMIT 50"), False),
                ("top_customers_slow", "sqlite", sql(
                    "SELECT c.id, c.name, (SELECT ROUND(SUM(o.total), 2) FROM orders o "
                    "WHERE o.customer_id = c.id) AS lifetime_value FROM customers c "
                    "WHERE c.id <= :limit ORDER BY lifetime_value DESC"), False),
                ("search_products", "sqlite", sql(
                    "SELECT id, name, price FROM products WHERE name LIKE :pattern"), False),
                ("broken_invoices", "sqlite", sql("SELECT * FROM invoices"), False),
            ],
        },
        {
            "slug": f"{organization_slug}-ops",
            "name": "Operations console",
            "definition": {"pages": [
                _page("Status",
                      _component("json", "statusView", data="{{queries.service_status.data}}"),
                      _component("form", "ticketForm", on_submit="create_ticket")),
            ]},
            "queries": [
                ("service_status", "restapi", http("GET", "/status"), True),
                ("slow_endpoint", "restapi", http("GET", "/slow", {"delay": "0.8"}), False),
                ("failing_endpoint", "restapi", http("GET", "/fail"), False),
                ("create_ticket", "restapi", http("POST", "/tickets", body={"subject": "{{subject}}"}), False),
            ],
        },
    ]
    apps += [
        {
            "slug": f"{organization_slug}-inventory",
            "name": "Inventory",
            "definition": {"pages": [
                _page("Products", _component("table", "productsTable", data="{{queries.list_products.data}}")),
            ]},
            "queries": [
                ("list_products", "sqlite", sql(
                    "SELECT id, name, category, price FROM products ORDER BY name LIMIT 25"), True),
                ("products_by_category", "sqlite", sql(
                    "SELECT id, name, price FROM products WHERE category = :category "
                    "ORDER BY price DESC LIMIT 50"), False),
            ],
        },
        {
            "slug": f"{organization_slug}-orders",
            "name": "Order desk",
            "definition": {"pages": [
                _page("Orders", _component("table", "ordersTable", data="{{queries.recent_orders.data}}")),
            ]},
            "queries": [
                ("recent_orders", "sqlite", sql(
                    "SELECT id, customer_id, total, status FROM orders ORDER BY ordered_at DESC LIMIT 25"), True),
                ("order_by_id", "sqlite", sql(
                    "SELECT id, customer_id, product_id, quantity, total, status FROM orders "
                    "WHERE id = :order_id"), False),
            ],
        },
        {
            "slug": f"{organization_slug}-markets",
            "name": "Customers by country",
            "definition": {"pages": [
                _page("Countries", _component("chart", "countryChart", data="{{queries.customers_per_country.data}}")),
            ]},
            "queries": [
                ("customers_per_country", "sqlite", sql(
                    "SELECT country, COUNT(*) AS customers FROM customers GROUP BY country "
                    "ORDER BY customers DESC"), True),
            ],
        },
    ]
    if "postgresql" in source_kinds:
        apps.append({
            "slug": f"{organization_slug}-sales-postgres",
            "name": "Sales on PostgreSQL",
            "definition": {"pages": [
                _page("Orders", _component("table", "statusTable", data="{{queries.orders_per_status.data}}")),
            ]},
            "queries": [
                ("orders_per_status", "postgresql", sql(
                    "SELECT status, COUNT(*) AS orders FROM orders GROUP BY status ORDER BY orders DESC"), True),
                ("customers_in_country", "postgresql", sql(
                    "SELECT id, name, email FROM customers WHERE country = :country ORDER BY id LIMIT 20"), False),
            ],
        })
    if "redis" in source_kinds:
        apps[2]["queries"].append(("cache_ping", "redis", {"command": ["PING"]}, True))
    return apps


def template_spec():
    return {
        "slug": TEMPLATE_SLUG,
        "name": "Customer directory",
        "description": "A table of customers and their orders, on the SQLite sample database.",
        "definition": app_specs("template", {"sqlite"})[0]["definition"],
        "queries": [
            {"name": name, "kind": kind, "options": options, "run_on_page_load": on_load}
            for name, kind, options, on_load in app_specs("template", {"sqlite"})[0]["queries"]
        ],
    }


# ---------------------------------------------------------------------------- audit events

#: Subjects of the seeded audit events: ``<kind>:<number>``, AUDIT_SUBJECTS_PER_KIND of each
#: kind, so one subject is about 1 row in 2,000 (the filter an index would make cheap).
AUDIT_SUBJECT_KINDS = ("app", "query", "data-source", "member", "invoice")
AUDIT_SUBJECTS_PER_KIND = 400
AUDIT_ACTIONS = ("app.update", "app.release", "query.run", "member.login", "data-source.update", "invoice.export")
#: Seeded rows: a million on PostgreSQL (a sequential scan the planner cannot hide), fewer
#: on SQLite where ``executemany`` is the cost; ``DEMO_AUDIT_EVENTS`` overrides both.
AUDIT_EVENTS_BY_VENDOR = {"postgresql": 1_000_000}
AUDIT_EVENTS_DEFAULT = 200_000
AUDIT_HISTORY_DAYS = 90


def audit_event_target(vendor):
    configured = os.environ.get("DEMO_AUDIT_EVENTS")
    if configured:
        return int(configured)
    return AUDIT_EVENTS_BY_VENDOR.get(vendor, AUDIT_EVENTS_DEFAULT)


def audit_subject(number):
    """The subject of seeded row ``number``; demo_traffic asks for the same ones."""
    kind = AUDIT_SUBJECT_KINDS[(number // AUDIT_SUBJECTS_PER_KIND) % len(AUDIT_SUBJECT_KINDS)]
    return f"{kind}:{number % AUDIT_SUBJECTS_PER_KIND}"


def random_audit_subject(rng):
    return audit_subject(rng.randrange(AUDIT_SUBJECTS_PER_KIND * len(AUDIT_SUBJECT_KINDS)))


#: The release before this one, and its per-route latency (path, requests, mean seconds),
#: seeded so that release comparison has a baseline in the demo.
PREVIOUS_RELEASE = "0.0.9"
RELEASE_HISTORY = [
    ("/api/apps/", 800, 0.030),
    ("/api/apps/sales-dashboard/", 600, 0.025),
    ("/api/apps/sales-dashboard/view", 900, 0.060),
    ("/api/data-queries/1/run", 700, 0.040),
    ("/api/auth/login", 300, 0.200),
    ("/api/data-sources/", 200, 0.020),
]
