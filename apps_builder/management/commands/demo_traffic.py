"""Send real HTTP traffic to a running platform, bounded in time and in count.

What a day of use looks like: logins (and wrong passwords), viewers loading apps and
running queries with parameters (some slow, some failing, an N+1 burst), the activity
feed and the apps overview (the planted missing index and N+1 of the platform's own
database), builders editing definitions, cutting and releasing versions, cloning a template,
exporting an app and importing its bundle (background tasks), scheduling a query, requests for unknown
paths, another organization's objects and invalid input. The REST API data sources are
pointed at an HTTP endpoint this command serves itself, so REST plugin runs are real.

Prints one summary line about every ``--summary-seconds`` and one at the end; exits 0
when it ran, non-zero only when the server never came up.
"""

import json
import random
import signal
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from django.core.management.base import BaseCommand, CommandError

from apps_builder import demo_data

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 30.0
#: Polls of a background task's status (half a second apart) before the traffic moves on.
TASK_POLLS = 20
#: Schedules the traffic keeps per organization; it deletes the oldest beyond.
MAX_DEMO_SCHEDULES = 3


class TrafficStopped(Exception):
    """The time or request budget is spent."""


class TrafficStats:
    """Counts shared by the worker threads; also holds the request budget."""

    def __init__(self, deadline, max_requests):
        self.deadline = deadline
        self.max_requests = max_requests
        self.started_at = time.monotonic()
        self.lock = threading.Lock()
        self.requests_sent = 0
        self.by_status_class = Counter()
        self.by_status_code = Counter()
        self.by_action = Counter()
        self.events = Counter()

    def reserve_request(self):
        with self.lock:
            if self.requests_sent >= self.max_requests or time.monotonic() >= self.deadline:
                raise TrafficStopped
            self.requests_sent += 1

    def record_status(self, status_code):
        with self.lock:
            self.by_status_class[f"{status_code // 100}xx"] += 1
            self.by_status_code[status_code] += 1

    def record(self, counter_name, key):
        with self.lock:
            getattr(self, counter_name)[key] += 1

    def summary(self, rest_endpoint_hits):
        with self.lock:
            elapsed = time.monotonic() - self.started_at
            classes = " ".join(
                f"{name}={self.by_status_class[name]}" for name in ("2xx", "3xx", "4xx", "5xx")
            )
            events = " ".join(f"{name}={count}" for name, count in sorted(self.events.items()))
            rate = self.requests_sent / elapsed if elapsed else 0.0
            return (
                f"{elapsed:.0f}s requests={self.requests_sent} {classes} "
                f"errors={self.by_status_class['errors']} rps={rate:.1f} "
                f"rest_endpoint_hits={rest_endpoint_hits} {events}"
            ).rstrip()


class DemoRestHandler(BaseHTTPRequestHandler):
    """The REST API the demo data sources call: status, a slow and a failing endpoint,
    and ticket creation. Answers JSON; counts hits on its server."""

    def do_GET(self):
        url = urlsplit(self.path)
        self.server.hits += 1
        if url.path == "/status":
            self._reply(200, {"status": "ok", "services": ["billing", "search", "mail"], "time": time.time()})
        elif url.path == "/slow":
            requested_delay = parse_qs(url.query).get("delay", ["0.8"])[0]
            try:
                delay = min(max(float(requested_delay), 0.0), 3.0)
            except ValueError:
                delay = 0.8
            time.sleep(delay)
            self._reply(200, {"status": "ok", "delay": delay})
        elif url.path == "/fail":
            self._reply(500, {"error": "the demo endpoint fails on purpose"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        self.server.hits += 1
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply(400, {"error": "body is not JSON"})
            return
        if urlsplit(self.path).path == "/tickets":
            self._reply(201, {"id": uuid.uuid4().hex[:8], "received": body})
        else:
            self._reply(404, {"error": "not found"})

    def _reply(self, status_code, payload):
        body = json.dumps(payload).encode()
        self.send_response(status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def start_rest_endpoint():
    """Serve DemoRestHandler on 127.0.0.1 on the port the egress policy allows
    (``demo_data.rest_endpoint_port``), in a daemon thread. When that port is taken, on any
    free one: the demo goes on, its REST runs refused by the egress policy."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", demo_data.rest_endpoint_port()), DemoRestHandler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), DemoRestHandler)
    server.daemon_threads = True
    server.hits = 0
    threading.Thread(target=server.serve_forever, name="demo-rest-endpoint", daemon=True).start()
    return server


def items_of(payload):
    """The objects of a list response, paginated or not."""
    if isinstance(payload, dict):
        payload = payload.get("results", [])
    return payload if isinstance(payload, list) else []


class Organization:
    """What the traffic knows of one demo organization."""

    def __init__(self, slug):
        self.slug = slug
        self.id = None
        self.tokens = {}
        self.app_slugs = []
        self.queries = []  # [(id, name)]
        self.data_source_ids = []


class Traffic:
    def __init__(self, base_url, stats, rest_server, stdout, seed):
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.rest_server = rest_server
        self.stdout = stdout
        self.rng_seed = seed
        self.organizations = [Organization(spec["slug"]) for spec in demo_data.ORGANIZATIONS]
        self.template_ids = []
        self.local = threading.local()
        self.tokens_lock = threading.Lock()

    # ------------------------------------------------------------------ HTTP
    def session(self):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def request(self, method, path, token=None, json_body=None, counted=True):
        """One HTTP request within the budget; returns the response or None on a network error."""
        if counted:
            self.stats.reserve_request()
        headers = {"Authorization": f"Token {token}"} if token else {}
        try:
            response = self.session().request(
                method, self.base_url + path, json=json_body, headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            )
        except requests.RequestException:
            self.stats.record("by_status_class", "errors")
            return None
        if counted:
            self.stats.record_status(response.status_code)
        return response

    @staticmethod
    def json_of(response):
        if response is None:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    # ------------------------------------------------------------------ setup
    def wait_for_server(self, wait_seconds, stop_event):
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline and not stop_event.is_set():
            try:
                response = requests.get(self.base_url + "/admin/login/", timeout=(2, 5))
                if response.status_code < 500:
                    return True
            except requests.RequestException:
                pass
            stop_event.wait(0.5)
        return False

    def log_in(self, username, password, counted=True):
        response = self.request("POST", "/api/auth/login", json_body={"username": username, "password": password},
                                counted=counted)
        payload = self.json_of(response) or {}
        return payload.get("token") if response is not None and response.status_code == 200 else None

    def prepare(self):
        """Tokens for every demo member (from a login: stored tokens are digests), what each
        organization holds, and the REST sources pointed at our endpoint."""
        for organization in self.organizations:
            for role in demo_data.ROLES:
                username = demo_data.username_for(organization.slug, role)
                token = self.log_in(username, demo_data.MEMBER_PASSWORD, counted=False)
                if token:
                    organization.tokens[role] = token
            self._discover(organization)
        rest_url = f"http://127.0.0.1:{self.rest_server.server_address[1]}/"
        pointed = sum(self._point_rest_sources(organization, rest_url) for organization in self.organizations)
        self.organizations = [org for org in self.organizations if len(org.tokens) == len(demo_data.ROLES)]
        if not self.organizations:
            raise CommandError("no demo organization is reachable: run `manage.py seed_demo` first")
        self.write(
            f"demo_traffic: {len(self.organizations)} organizations, "
            f"{sum(len(org.app_slugs) for org in self.organizations)} apps, "
            f"{sum(len(org.queries) for org in self.organizations)} queries; "
            f"{pointed} REST data sources -> {rest_url}"
        )

    def _discover(self, organization):
        builder_token = organization.tokens.get("builder")
        if not builder_token:
            return
        organizations = items_of(self.json_of(self.request("GET", "/api/organizations/", builder_token, counted=False)))
        for item in organizations:
            if item.get("slug") == organization.slug:
                organization.id = item.get("id")
        apps = items_of(self.json_of(self.request("GET", "/api/apps/", builder_token, counted=False)))
        prefix = organization.slug + "-"
        organization.app_slugs = [item["slug"] for item in apps if item.get("slug", "").startswith(prefix)
                                  and "-clone-" not in item["slug"] and "-import-" not in item["slug"]]
        for app_slug in organization.app_slugs:
            queries = items_of(self.json_of(
                self.request("GET", f"/api/data-queries/?app={app_slug}", builder_token, counted=False)
            ))
            organization.queries += [(item["id"], item.get("name", "")) for item in queries if "id" in item]
        if not self.template_ids:
            templates = items_of(self.json_of(self.request("GET", "/api/templates/", builder_token, counted=False)))
            self.template_ids = [item.get("slug") or item.get("id") for item in templates]

    def _point_rest_sources(self, organization, rest_url):
        admin_token = organization.tokens.get("admin")
        if not admin_token:
            return 0
        sources = items_of(self.json_of(self.request("GET", "/api/data-sources/", admin_token, counted=False)))
        organization.data_source_ids = [item["id"] for item in sources if "id" in item]
        pointed = 0
        for item in sources:
            if item.get("kind") != "restapi":
                continue
            options = {**(item.get("options") or {}), "base_url": rest_url}
            response = self.request("PATCH", f"/api/data-sources/{item['id']}/", admin_token,
                                    json_body={"options": options}, counted=False)
            pointed += response is not None and response.status_code == 200
        return pointed

    # ------------------------------------------------------------------ actions
    def viewer_load(self, rng, organization):
        if organization.app_slugs:
            self.request("GET", f"/api/apps/{rng.choice(organization.app_slugs)}/view", organization.tokens["viewer"])

    def run_query(self, rng, organization):
        if not organization.queries:
            return
        query_id, name = rng.choice(organization.queries)
        parameter_factory = demo_data.QUERY_PARAMETERS.get(name)
        parameters = parameter_factory(rng) if parameter_factory else {}
        self.request("POST", f"/api/data-queries/{query_id}/run", organization.tokens["viewer"],
                     json_body={"parameters": parameters})

    def n_plus_one(self, rng, organization):
        """A list, then one query per row: what a table with a per-row lookup does."""
        queries_by_name = {name: query_id for query_id, name in organization.queries}
        if "list_customers" not in queries_by_name or "customer_orders" not in queries_by_name:
            return
        token = organization.tokens["viewer"]
        self.request("POST", f"/api/data-queries/{queries_by_name['list_customers']}/run", token,
                     json_body={"parameters": {}})
        for customer_id in rng.sample(range(1, 21), 5):
            self.request("POST", f"/api/data-queries/{queries_by_name['customer_orders']}/run", token,
                         json_body={"parameters": {"customer_id": customer_id}})

    def activity_feed(self, rng, organization):
        """The audit trail of one subject: one of the organization's apps, or a seeded one."""
        if organization.id is None:
            return
        if organization.app_slugs and rng.random() < 0.3:
            subject = f"app:{rng.choice(organization.app_slugs)}"
        else:
            subject = demo_data.random_audit_subject(rng)
        role = rng.choice(["viewer", "admin"])
        self.request("GET", f"/api/organizations/{organization.id}/activity?{urlencode({'subject': subject})}",
                     organization.tokens[role])

    def apps_overview(self, rng, organization):
        if organization.id is not None:
            self.request("GET", f"/api/organizations/{organization.id}/apps-overview",
                         organization.tokens[rng.choice(["viewer", "admin"])])

    def builder_edit(self, rng, organization):
        if not organization.app_slugs:
            return
        token = organization.tokens["builder"]
        app_slug = rng.choice(organization.app_slugs)
        app = self.json_of(self.request("GET", f"/api/apps/{app_slug}/", token))
        if not isinstance(app, dict):
            return
        definition = app.get("definition") or {}
        definition["meta"] = {"edited_by": "demo_traffic", "edited_at": time.time(),
                              "theme": rng.choice(["light", "dark"])}
        response = self.request("PATCH", f"/api/apps/{app_slug}/", token, json_body={"definition": definition})
        if response is not None and response.status_code == 200:
            self.stats.record("events", "edits")

    def builder_release(self, rng, organization):
        if not organization.app_slugs:
            return
        token = organization.tokens["builder"]
        app_slug = rng.choice(organization.app_slugs)
        version_name = f"v{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        response = self.request("POST", f"/api/apps/{app_slug}/versions/", token, json_body={"name": version_name})
        if response is None or response.status_code != 201:
            return
        self.stats.record("events", "versions")
        version = self.json_of(response) or {}
        for reference in dict.fromkeys([version.get("id"), version_name]):
            if reference is None:
                continue
            response = self.request("POST", f"/api/apps/{app_slug}/release", token, json_body={"version": reference})
            if response is not None and response.status_code < 300:
                self.stats.record("events", "releases")
                return

    def login(self, rng, organization):
        role = rng.choice(demo_data.ROLES)
        self.log_in(demo_data.username_for(organization.slug, role), demo_data.MEMBER_PASSWORD)

    def failed_login(self, rng, organization):
        username = rng.choice([demo_data.username_for(organization.slug, "viewer"), "nobody"])
        self.request("POST", "/api/auth/login", json_body={"username": username, "password": "wrong-password"})

    def health_check(self, rng, organization):
        """What a load balancer does: /health checks the database, broker and cache."""
        self.request("GET", "/health")

    def logout_and_back(self, rng, organization):
        """Log out (which may revoke the token), then log in again and keep the new token."""
        role = rng.choice(demo_data.ROLES)
        username = demo_data.username_for(organization.slug, role)
        token = self.log_in(username, demo_data.MEMBER_PASSWORD)
        if not token:
            return
        self.request("POST", "/api/auth/logout", token)
        new_token = self.log_in(username, demo_data.MEMBER_PASSWORD)
        if new_token:
            with self.tokens_lock:
                organization.tokens[role] = new_token

    def not_found(self, rng, organization):
        path = rng.choice([
            f"/api/no-such-endpoint/{rng.randint(1, 999)}/",
            f"/api/apps/no-such-app-{rng.randint(1, 999)}/",
            f"/api/data-queries/{10**9 + rng.randint(1, 999)}/run",
            "/wp-login.php",
        ])
        method = "POST" if path.endswith("/run") else "GET"
        self.request(method, path, organization.tokens["viewer"], json_body={} if method == "POST" else None)

    def other_organization(self, rng, organization):
        others = [org for org in self.organizations if org is not organization and org.app_slugs]
        if others:
            slug = rng.choice(rng.choice(others).app_slugs)
            self.request("GET", f"/api/apps/{slug}/", organization.tokens["builder"])

    def forbidden_edit(self, rng, organization):
        if organization.app_slugs:
            self.request("PATCH", f"/api/apps/{rng.choice(organization.app_slugs)}/", organization.tokens["viewer"],
                         json_body={"name": "viewers cannot rename"})

    def invalid_input(self, rng, organization):
        self.request("POST", "/api/apps/", organization.tokens["builder"],
                     json_body={"organization": organization.id, "name": "", "slug": "not a slug!"})

    def anonymous(self, rng, organization):
        self.request("GET", rng.choice(["/api/apps/", "/api/data-sources/"]))

    def listing(self, rng, organization):
        role = rng.choice(demo_data.ROLES)
        path = rng.choice(["/api/apps/", "/api/organizations/", "/api/data-sources/", "/api/templates/",
                           f"/api/organizations/{organization.id}/members/"])
        self.request("GET", path, organization.tokens[role])

    def test_data_source(self, rng, organization):
        if organization.data_source_ids:
            self.request("POST", f"/api/data-sources/{rng.choice(organization.data_source_ids)}/test",
                         organization.tokens["admin"])

    def template_clone(self, rng, organization):
        """Clone the template, then delete the clone so a long run stays bounded."""
        if not self.template_ids or organization.id is None:
            return
        clone_slug = f"{organization.slug}-clone-{uuid.uuid4().hex[:8]}"
        response = self.request("POST", "/api/apps/from-template", organization.tokens["builder"], json_body={
            "template": rng.choice(self.template_ids), "organization": organization.id,
            "name": f"Clone {clone_slug[-8:]}", "slug": clone_slug,
        })
        if response is not None and response.status_code == 201:
            self.stats.record("events", "clones")
            self.request("GET", f"/api/apps/{clone_slug}/", organization.tokens["builder"])
            self.request("DELETE", f"/api/apps/{clone_slug}/", organization.tokens["admin"])

    def finished_task(self, task_id, token):
        """The background task once it succeeded or failed, or None when it did not finish in time."""
        for _ in range(TASK_POLLS):
            task = self.json_of(self.request("GET", f"/api/tasks/{task_id}", token))
            if not isinstance(task, dict) or task.get("status") in ("succeeded", "failed"):
                return task
            time.sleep(0.5)
        return None

    def export_import(self, rng, organization):
        """Export an app, import its bundle as a new app (both background tasks), then
        delete the import so a long run stays bounded."""
        if not organization.app_slugs or organization.id is None:
            return
        token = organization.tokens["builder"]
        response = self.request("POST", f"/api/apps/{rng.choice(organization.app_slugs)}/export", token)
        exported = self.finished_task((self.json_of(response) or {}).get("id"), token) if response else None
        if not exported or exported.get("status") != "succeeded":
            return
        self.stats.record("events", "exports")
        import_slug = f"{organization.slug}-import-{uuid.uuid4().hex[:8]}"
        response = self.request("POST", "/api/apps/import", token, json_body={
            "organization": organization.id, "bundle": exported["result"], "slug": import_slug,
            "name": f"Import {import_slug[-8:]}"})
        imported = self.finished_task((self.json_of(response) or {}).get("id"), token) if response else None
        if imported and imported.get("status") == "succeeded":
            self.stats.record("events", "imports")
            self.request("DELETE", f"/api/apps/{import_slug}/", organization.tokens["admin"])

    def schedule_query(self, rng, organization):
        """Schedule one of the organization's queries, read a schedule's latest runs, and
        keep at most ``MAX_DEMO_SCHEDULES`` schedules (the oldest are deleted)."""
        if not organization.queries:
            return
        token = organization.tokens["builder"]
        query_id, name = rng.choice(organization.queries)
        parameter_factory = demo_data.QUERY_PARAMETERS.get(name)
        response = self.request("POST", "/api/schedules/", token, json_body={
            "data_query": query_id, "interval_seconds": rng.choice([60, 120, 300]),
            "parameters": parameter_factory(rng) if parameter_factory else {}})
        if response is not None and response.status_code == 201:
            self.stats.record("events", "schedules")
        schedules = items_of(self.json_of(self.request("GET", "/api/schedules/?limit=100", token)))
        own = [item for item in schedules if item.get("organization") == organization.id and "id" in item]
        if own:
            self.request("GET", f"/api/schedules/{rng.choice(own)['id']}/runs", organization.tokens["viewer"])
        for item in own[:-MAX_DEMO_SCHEDULES]:
            self.request("DELETE", f"/api/schedules/{item['id']}", token)

    ACTION_WEIGHTS = {
        "viewer_load": 22, "run_query": 24, "n_plus_one": 3, "builder_edit": 8, "builder_release": 4,
        "login": 5, "failed_login": 4, "logout_and_back": 3, "health_check": 2, "not_found": 5, "other_organization": 3,
        "forbidden_edit": 2, "invalid_input": 2, "anonymous": 2, "listing": 8, "test_data_source": 2,
        "template_clone": 1, "activity_feed": 5, "apps_overview": 3, "export_import": 1, "schedule_query": 1,
    }

    # ------------------------------------------------------------------ running
    def worker(self, worker_number, stop_event, pause_seconds):
        rng = random.Random(self.rng_seed + worker_number)
        action_names = list(self.ACTION_WEIGHTS)
        weights = list(self.ACTION_WEIGHTS.values())
        while not stop_event.is_set():
            action_name = rng.choices(action_names, weights)[0]
            organization = rng.choice(self.organizations)
            try:
                getattr(self, action_name)(rng, organization)
            except TrafficStopped:
                break
            except Exception:  # one odd response must not end the traffic
                self.stats.record("events", "action_errors")
            self.stats.record("by_action", action_name)
            if pause_seconds:
                stop_event.wait(rng.uniform(0, 2 * pause_seconds))
        stop_event.set()

    def write(self, line):
        self.stdout.write(line)
        self.stdout.flush()


class Command(BaseCommand):
    help = "Send bounded, realistic HTTP traffic (logins, edits, releases, views, query runs) to a running server."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="base URL of the running server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--seconds", type=float, required=True, help="stop after this long")
        parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests")
        parser.add_argument("--concurrency", type=int, default=2, help="parallel clients")
        parser.add_argument("--pause", type=float, default=0.2,
                            help="mean think time of a client between actions, in seconds")
        parser.add_argument("--wait-seconds", type=float, default=180.0,
                            help="how long to wait for the server to come up")
        parser.add_argument("--summary-seconds", type=float, default=10.0, help="summary line period")
        parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible action mix)")

    def handle(self, *args, **options):
        stop_event = threading.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signal_number, lambda *_: stop_event.set())
        rest_server = start_rest_endpoint()
        try:
            self._run(options, stop_event, rest_server)
        finally:
            rest_server.shutdown()
            rest_server.server_close()

    def _run(self, options, stop_event, rest_server):
        probe = Traffic(options["url"], TrafficStats(0, 0), rest_server, self.stdout, 0)
        if not probe.wait_for_server(options["wait_seconds"], stop_event):
            if stop_event.is_set():
                return
            raise CommandError(f"{options['url']} did not answer within {options['wait_seconds']:.0f}s")
        stats = TrafficStats(time.monotonic() + options["seconds"], options["max_requests"])
        seed = options["seed"] if options["seed"] is not None else random.randrange(1 << 30)
        traffic = Traffic(options["url"], stats, rest_server, self.stdout, seed)
        traffic.prepare()
        # The budget is the traffic's: a slow setup (a loaded machine) does not spend it.
        stats.started_at = time.monotonic()
        stats.deadline = stats.started_at + options["seconds"]
        workers = [
            threading.Thread(target=traffic.worker, args=(number, stop_event, options["pause"]),
                             name=f"demo-traffic-{number}", daemon=True)
            for number in range(max(1, options["concurrency"]))
        ]
        for thread in workers:
            thread.start()
        next_summary = time.monotonic() + options["summary_seconds"]
        while not stop_event.wait(min(0.5, max(0.0, next_summary - time.monotonic()))):
            if time.monotonic() >= next_summary:
                traffic.write("demo_traffic: " + stats.summary(rest_server.hits))
                next_summary += options["summary_seconds"]
            if not any(thread.is_alive() for thread in workers):
                break
        stop_event.set()
        for thread in workers:
            thread.join(timeout=READ_TIMEOUT_SECONDS + CONNECT_TIMEOUT_SECONDS)
        traffic.write("demo_traffic finished: " + stats.summary(rest_server.hits))
        statuses = " ".join(f"{code}={count}" for code, count in sorted(stats.by_status_code.items()))
        traffic.write(f"demo_traffic statuses: {statuses}")
        actions = " ".join(f"{name}={count}" for name, count in sorted(stats.by_action.items()))
        traffic.write(f"demo_traffic actions: {actions}")
