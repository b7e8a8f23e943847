"""The one settings module. Everything that differs between deployments is read
from the environment; a bad value raises ImproperlyConfigured naming the variable.

Embedded default (nothing set): SQLite in var/, the in-memory channel layer.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from siq_integration.datacenters import DataCenterConfigError, build_table

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SIQ_VAR_DIR", BASE_DIR / "var"))


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool = False) -> bool:
    raw = _env(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def _env_number(name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = _env(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be between {minimum} and {maximum}")
    return value


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


def _env_json_object(name: str) -> dict:
    raw = _env(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return value


DEBUG = _env_bool("DJANGO_DEBUG")

SECRET_KEY = _env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it to a long random string "
            "(`make demo` writes one to var/demo.env for local use)."
        )
    warnings.warn(
        "SECRET_KEY is not set; using a throw-away key (sessions end on restart)",
        stacklevel=1,
    )
    SECRET_KEY = secrets.token_urlsafe(50)

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "siq_integration",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The live page of a big portal is megabytes of HTML; CSRF tokens are masked per
    # response, which keeps compression from leaking them (BREACH).
    "django.middleware.gzip.GZipMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.access",
                "dashboard.context_processors.clock",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

_database_url = _env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    _database = dj_database_url.parse(_database_url, conn_max_age=0)
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if not _database.get("ENGINE"):
    raise ImproperlyConfigured("DATABASE_URL names an unknown database scheme")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    if _database["NAME"] not in {"", ":memory:"}:
        Path(_database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several threads (the web server, the worker) write: wait for the lock instead of
    # failing, take the write lock at BEGIN so reads never need an upgrade, and use WAL
    # so readers do not block the writer.
    # Tests use a file too (threads and live servers must see the same database), one per
    # test run: the name goes into the environment so child processes find the same file.
    _test_db = os.environ.setdefault(
        "SIQ_TEST_DB_NAME", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")
    )
    _database["TEST"] = {"NAME": _test_db}
    _database["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -----------------------------------------------------------------

REDIS_URL = _env("REDIS_URL")
if REDIS_URL:
    if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(
            f"REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://"
        )
    # Every process of one deployment must share the prefix; deployments (or test runs)
    # sharing one Redis keep apart with their own.
    REDIS_PREFIX = _env("REDIS_PREFIX", "asgi")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": REDIS_PREFIX,
                "capacity": 1500,
                "expiry": 30,
            },
        }
    }
else:
    # One process: the webhook view, the worker and every consumer share this layer. Live
    # HTML skips it (dashboard/realtime/fanout.py sends it to each page itself); what still
    # goes through it is control messages (access changed, a portal changed or gone). The
    # default capacity (100) drops messages silently under load.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1500, "expiry": 30},
        }
    }

# Opt-in: frame each live message once and write the same bytes to every page's socket
# (dashboard/server/frame_once.py, which leans on daphne's, autobahn's and Twisted's
# internals, pinned in pyproject.toml and checked by tests/test_frame_once_contract.py).
SIQ_FRAME_ONCE = _env_bool("SIQ_FRAME_ONCE")

# --- Auth, i18n, static ------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "dashboard.passwords.SeasonOrMonthWithYearValidator"},
]

# Sign-in throttling (django-axes), on /login/ and /admin/login/ alike: 5 failures for one
# username, or from one address, refuse sign-in there for 15 minutes (a 429 page in words;
# an admin unlocks an account or address on the Users page). dashboard/signin.py reads
# the address.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own
AXES_RESET_ON_SUCCESS = False  # a sign-in to one's own account must not clear an address
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # 15 minutes from the lockout
AXES_CLIENT_IP_CALLABLE = "dashboard.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "dashboard.signin.locked_out"
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in: only failures are kept, 15 min
# How many reverse proxies in front append to X-Forwarded-For (0: trust REMOTE_ADDR only).
SIQ_TRUSTED_PROXY_COUNT = int(_env_number("SIQ_TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10))
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
# Serve straight from the app and project folders: no collectstatic step for the
# embedded default. Behind a reverse proxy, collectstatic and let the proxy serve.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if _env_bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Content-Security-Policy and the production profile ------------------------------------

# Django's own CSP: scripts only from here or inline with this response's nonce (templates
# write nonce="{{ csp_nonce }}"), styles likewise; style="" attributes stay allowed (the
# load bars' widths), nothing framed, no plugins, no <base>.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
)
TEMPLATES[0]["OPTIONS"]["context_processors"].append("django.template.context_processors.csp")
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],  # fetches and the live page's websocket, same origin
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
}
# Browser tests only (pyproject's pytest env): Playwright's wait_for_function evaluates text.
if _env_bool("SIQ_CSP_ALLOW_EVAL_FOR_TESTS", default=False):
    SECURE_CSP["script-src"].append(CSP.UNSAFE_EVAL)

# SIQ_PROFILE=production: behind a reverse proxy that ends TLS and sets X-Forwarded-Proto.
# Every request is redirected to https (but /healthz, which a load balancer may probe over
# plain http), HSTS for a year, cookies only over https. `manage.py check --deploy` passes
# without a warning (tests/test_security_headers.py).
SIQ_PROFILE = _env("SIQ_PROFILE", "default").lower()
if SIQ_PROFILE not in {"default", "production"}:
    raise ImproperlyConfigured(f"SIQ_PROFILE={SIQ_PROFILE!r} must be default or production")
if SIQ_PROFILE == "production":
    if DEBUG:
        raise ImproperlyConfigured("SIQ_PROFILE=production cannot run with DJANGO_DEBUG on")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _env_bool("SIQ_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = int(
        _env_number("SIQ_HSTS_SECONDS", 31_536_000, minimum=0, maximum=63_072_000)
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SIQ_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = _env_bool("SIQ_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True

# --- Secrets at rest --------------------------------------------------------------


def _fernet_keys(name: str) -> list[str]:
    keys = _env_list(name)
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 url-safe base64 bytes); "
                'generate one with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`'
            )
    return keys


# Newest first. Tokens are encrypted with the first key and decrypted with any.
TOKEN_ENCRYPTION_KEYS = _fernet_keys("TOKEN_ENCRYPTION_KEYS")

# --- SalesIQ ---------------------------------------------------------------------

ZOHO_CLIENT_ID = _env("ZOHO_CLIENT_ID")
ZOHO_CLIENT_SECRET = _env("ZOHO_CLIENT_SECRET")

try:
    SIQ_DATA_CENTERS = build_table(os.environ.get("SIQ_EXTRA_DATA_CENTERS"))
except DataCenterConfigError as exc:
    raise ImproperlyConfigured(f"SIQ_EXTRA_DATA_CENTERS {exc}") from None

# oauthlib refuses plain http. build_table() only lets loopback hosts use http, so
# when one is configured (the simulator, a local proxy) every http endpoint we could
# talk to is on this machine; production tables are all https and leave this unset.
if any(dc.is_loopback for dc in SIQ_DATA_CENTERS.values()):
    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

# The HTTP methods Zoho's pages do not confirm live here, not in code.
SIQ_HTTP_METHODS = {
    "v2.conversation_close": "POST",
    "v2.operator_status": "PUT",
    # Zoho's Pick up Chat page names no method (docs/step-in.md).
    "v2.conversation_pickup": "PUT",
    # Zoho's Update a Webhook page, as stored here, shows no method (docs/participants.md).
    "v2.webhook_update": "PUT",
}
_method_overrides = _env_json_object("SIQ_HTTP_METHODS")
for _key, _method in _method_overrides.items():
    if _key not in SIQ_HTTP_METHODS:
        raise ImproperlyConfigured(
            f"SIQ_HTTP_METHODS: unknown call {_key!r}; known: {', '.join(sorted(SIQ_HTTP_METHODS))}"
        )
    if not isinstance(_method, str) or _method.upper() not in {"GET", "POST", "PUT", "PATCH"}:
        raise ImproperlyConfigured(f"SIQ_HTTP_METHODS: {_key} must be GET, POST, PUT or PATCH")
    SIQ_HTTP_METHODS[_key] = _method.upper()

# Calls per minute and per day, by plan (the reference document's figures; v2
# publishes none). A portal's own figures may be edited.
SIQ_PLANS = {
    "free": {"label": "Free", "per_minute": 10, "per_day": 1_000},
    "basic": {"label": "Basic", "per_minute": 20, "per_day": 5_000},
    "professional": {"label": "Professional", "per_minute": 50, "per_day": 20_000},
    "enterprise": {"label": "Enterprise", "per_minute": 100, "per_day": 50_000},
}
# Share of each minute's budget that background polling may not touch, so a
# supervisor's click always finds a call left.
SIQ_ACTION_RESERVE_SHARE = _env_number("SIQ_ACTION_RESERVE_SHARE", 0.3, minimum=0, maximum=0.9)

SIQ_HTTP_CONNECT_TIMEOUT = _env_number("SIQ_HTTP_CONNECT_TIMEOUT", 5, minimum=0.1, maximum=60)
SIQ_HTTP_READ_TIMEOUT = _env_number("SIQ_HTTP_READ_TIMEOUT", 15, minimum=0.1, maximum=120)
SIQ_RETRY_ATTEMPTS = int(_env_number("SIQ_RETRY_ATTEMPTS", 3, minimum=1, maximum=10))
SIQ_RETRY_BASE_DELAY = _env_number("SIQ_RETRY_BASE_DELAY", 0.5, minimum=0, maximum=30)
SIQ_RETRY_MAX_DELAY = _env_number("SIQ_RETRY_MAX_DELAY", 8, minimum=0, maximum=300)
# Zoho CRM (dashboard/crm.py): how long a visitor's lookup is kept before CRM is asked
# again, and how soon a failed lookup is tried again (seconds).
CRM_LOOKUP_TTL = _env_number("CRM_LOOKUP_TTL", 3600, minimum=10, maximum=7 * 86_400)
CRM_RETRY_AFTER = _env_number("CRM_RETRY_AFTER", 120, minimum=1, maximum=86_400)
# Refresh access tokens this many seconds before they expire.
SIQ_TOKEN_REFRESH_MARGIN = _env_number("SIQ_TOKEN_REFRESH_MARGIN", 300, minimum=0, maximum=3000)
# The webhook door: refused deliveries (bad or no signature) one client address may cause
# a minute before it is answered 429 with no database write; days the inbox keeps applied
# and rejected deliveries before the worker prunes them.
SIQ_WEBHOOK_REFUSALS_PER_MINUTE = int(
    _env_number("SIQ_WEBHOOK_REFUSALS_PER_MINUTE", 20, minimum=1, maximum=10_000)
)
SIQ_INBOX_KEEP_DAYS = _env_number("SIQ_INBOX_KEEP_DAYS", 7, minimum=0.01, maximum=3650)

# --- Mail (alert escalations) ---------------------------------------------------------------


def _mailers(name: str) -> dict:
    """SMTP_URL=smtp://user:password@host:587?tls=1 (or smtps:// for implicit TLS)."""
    raw = _env(name)
    if not raw:
        return {}  # no mail server: e-mail escalations are recorded as failed, in words
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must look like smtp://user:password@host:587")
    options = {
        "host": parts.hostname,
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "use_ssl": parts.scheme == "smtps",
        "use_tls": parse_qs(parts.query).get("tls", ["0"])[0] in {"1", "true", "yes"},
        "timeout": 10,
    }
    return {
        "default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}
    }


MAILERS = _mailers("SMTP_URL")
# Without SMTP_URL there is deliberately no mailer: an e-mail escalation is then recorded as
# failed, in words, on the alert (dashboard.alerts). Django's warning about it says nothing new.
SILENCED_SYSTEM_CHECKS = [] if MAILERS else ["mail.W001"]
DEFAULT_FROM_EMAIL = _env("DEFAULT_FROM_EMAIL", "salesiq-supervisor@localhost")

# Outbound calls to addresses an admin types (escalation webhooks; dashboard/outbound.py):
# https only, never to loopback, private, link-local or metadata addresses, unless the host
# (a name, or name:port) is listed here: those may also use http and internal addresses.
SIQ_OUTBOUND_TIMEOUT = _env_number("SIQ_OUTBOUND_TIMEOUT", 5, minimum=0.5, maximum=60)
SIQ_OUTBOUND_ALLOW_HOSTS = [host.lower() for host in _env_list("SIQ_OUTBOUND_ALLOW_HOSTS")]

# Where Zoho sends the admin back after consent; derived from the request when unset.
PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL").rstrip("/")

# --- Logging -----------------------------------------------------------------------

# `serve` counts webhook deliveries in one line every 5 minutes instead of an access-log line
# each (a busy portal sends several a second); 1: a line each, as for every other request.
ACCESS_LOG_WEBHOOKS = _env_bool("ACCESS_LOG_WEBHOOKS", default=False)

# The largest request body `serve` reads (bytes): a larger declared Content-Length is
# answered 413 unread, a chunked body is cut off there (dashboard/server/bodycap.py). SalesIQ's
# deliveries are capped at 256 KB; no page posts more. A reverse proxy's
# client_max_body_size is a second line of defence, not the only one.
MAX_REQUEST_BODY_BYTES = int(
    _env_number("MAX_REQUEST_BODY_BYTES", 256 * 1024, minimum=1024, maximum=64 * 1024 * 1024)
)

# Where Django reports refused suspicious requests (django.security.<class name>): a filter
# on a logger does not see what its children log, so each gets dashboard.logs' filter.
_SUSPICIOUS_LOGGERS = (
    "django.security.DisallowedHost",
    "django.security.DisallowedRedirect",
    "django.security.RequestDataTooBig",
    "django.security.TooManyFieldsSent",
    "django.security.TooManyFilesSent",
    "django.security.SuspiciousMultipartForm",
    "django.security.SuspiciousOperation",
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "client_errors": {"()": "dashboard.logs.ClientErrorsOnOneLine"},
        "suspicious": {"()": "dashboard.logs.SuspiciousOnOneLine"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _env("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # A refused request is one line (dashboard.logs), not a traceback.
        "django.request": {"filters": ["client_errors"]},
        **{name: {"filters": ["suspicious"]} for name in _SUSPICIOUS_LOGGERS},
        # These libraries log tokens and token-bearing URLs at DEBUG: never let them.
        "oauthlib": {"level": "WARNING"},
        "requests_oauthlib": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # django-axes says INFO for every sign-in; its lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}
