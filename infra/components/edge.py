"""Cloudflare in front of the API: proxied DNS, TLS full (strict) to an Origin CA certificate, TLS 1.2+,
HTTPS only with HSTS, HTTP/2 and HTTP/3, the Cloudflare managed and OWASP WAF rulesets, a per-address
rate limit in front of /v1, and cache rules: the web app's fingerprinted assets (/static/) for as long
as the origin says (a year, immutable), pages, the API and the calendar feeds never (thumbnails are on
YouTube's CDN, not ours).

Every environment shares one zone, and Cloudflare keeps one entry-point ruleset per phase per zone
(https://developers.cloudflare.com/ruleset-engine/about/phases/): were each stack to declare its own, the
last `up` would replace the other's WAF, rate-limit and cache rules. So the zone's settings and rulesets
belong to one stack (`cloudflare.zone_owner` in infra/facts.yaml), with rules for every environment's
hostname; each stack owns only its own DNS records and origin certificate."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_tls as tls

from chatwizard.core.edge import STATIC_PREFIX
from infra.facts import Environment

TYPE = "chatwizard:infra:Edge"

# Cloudflare's published ids of its managed WAF rulesets.
CLOUDFLARE_MANAGED_RULESET = "efb7b8c949ac4650a09736fc376e9aee"
OWASP_CORE_RULESET = "4814384a9e5d4991b9815dcfc25d2f1f"
HSTS_MAX_AGE_S = 31_536_000
ZONE_SETTINGS = {
    "ssl": "strict",
    "min_tls_version": "1.2",
    "tls_1_3": "on",
    "always_use_https": "on",
    "automatic_https_rewrites": "on",
    "http2": "on",
    "http3": "on",
    "security_header": {
        "strict_transport_security": {
            "enabled": True,
            "max_age": HSTS_MAX_AGE_S,
            "include_subdomains": True,
            "preload": True,
            "nosniff": True,
        }
    },
}


@dataclass(frozen=True)
class EdgeArgs:
    zone_id: str
    environment: Environment  # this stack's hostnames
    origin_hostname: pulumi.Input[str]  # the cluster's load balancer
    zone_environments: list[Environment] | None  # set on the zone's owner: the rules cover all of them


class Edge(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zone = args.zone_id
        hostname, dashboard_hostname = args.environment.api_hostname, args.environment.dashboard_hostname
        for record, host in ((name, hostname), (f"{name}-dashboards", dashboard_hostname)):
            cloudflare.DnsRecord(
                record,
                zone_id=zone,
                name=host,
                type="CNAME",
                content=args.origin_hostname,
                proxied=True,
                ttl=1,
                comment="Chat Wizard, via Cloudflare",
                opts=child,
            )
        self._origin_certificate(name, [hostname, dashboard_hostname])
        if args.zone_environments:
            self._zone(name, zone, args.zone_environments)
        self.url = f"https://{hostname}"
        self.dashboard_url = f"https://{dashboard_hostname}"
        self.register_outputs({"url": self.url, "dashboard_url": self.dashboard_url})

    def _zone(self, name: str, zone: str, environments: list[Environment]) -> None:
        """The zone-wide settings and phase entry points, for every environment's API hostname."""
        child = pulumi.ResourceOptions(parent=self)
        for setting, value in ZONE_SETTINGS.items():
            cloudflare.ZoneSetting(
                f"{name}-{setting.replace('_', '-')}",
                zone_id=zone,
                setting_id=setting,
                value=value,
                opts=child,
            )
        api = "http.host in {" + " ".join(f'"{e.api_hostname}"' for e in environments) + "}"
        cloudflare.Ruleset(
            f"{name}-waf",
            zone_id=zone,
            kind="zone",
            phase="http_request_firewall_managed",
            name="Managed WAF",
            opts=child,
            rules=[
                {
                    "action": "execute",
                    "expression": "true",
                    "description": description,
                    "action_parameters": {"id": ruleset},
                }
                for ruleset, description in (
                    (CLOUDFLARE_MANAGED_RULESET, "Cloudflare managed"),
                    (OWASP_CORE_RULESET, "OWASP core"),
                )
            ],
        )
        cloudflare.Ruleset(
            f"{name}-rate-limit",
            zone_id=zone,
            kind="zone",
            phase="http_ratelimit",
            name="API rate limit",
            opts=child,
            rules=[
                {
                    "action": "block",
                    "description": f"{environment.name}: per address, before the app's own limits",
                    "expression": f'http.host eq "{environment.api_hostname}" and '
                    'starts_with(http.request.uri.path, "/v1/")',
                    "ratelimit": {
                        "characteristics": ["cf.colo.id", "ip.src"],
                        "period": 60,
                        "requests_per_period": environment.edge_rate_limit_per_minute,
                        "mitigation_timeout": 60,
                    },
                }
                for environment in environments
            ],
        )
        cloudflare.Ruleset(
            f"{name}-cache",
            zone_id=zone,
            kind="zone",
            phase="http_request_cache_settings",
            name="Cache rules",
            opts=child,
            rules=cache_rules(api),
        )

    def _origin_certificate(self, name: str, hostnames: list[str]) -> None:
        """The origin's certificate for full (strict) TLS, signed by Cloudflare's Origin CA."""
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-origin", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-origin",
            private_key_pem=key.private_key_pem,
            subject={"common_name": hostnames[0]},
            dns_names=hostnames,
            opts=child,
        )
        certificate = cloudflare.OriginCaCertificate(
            f"{name}-origin",
            csr=request.cert_request_pem,
            hostnames=hostnames,
            request_type="origin-ecc",
            requested_validity=5475,
            opts=child,
        )
        self.origin_certificate_pem = certificate.certificate
        self.origin_private_key_pem = key.private_key_pem


def path_starts(prefix: str) -> str:
    return f'starts_with(http.request.uri.path, "{prefix}")'


def cache_rules(hosts: str) -> list[dict]:
    """Every rule that matches a request applies, later ones over earlier ones (Cloudflare's cache rules).
    Assets: the origin's `public, max-age=31536000, immutable` decides, at the edge and in browsers.
    Cloudflare keys its cache by the compressed variant itself: of all Vary values it honours
    `Vary: Accept-Encoding` (which the origin sends), so a gzip-only client never gets brotli."""
    static = f'starts_with(http.request.uri.path, "{STATIC_PREFIX}")'
    return [
        {
            "action": "set_cache_settings",
            "description": "fingerprinted static assets: as long as the origin says (a year, immutable)",
            "expression": f"{hosts} and {static}",
            "action_parameters": {
                "cache": True,
                "edge_ttl": {"mode": "respect_origin"},
                "browser_ttl": {"mode": "respect_origin"},
                "origin_cache_control": True,
                "cache_key": {"cache_deception_armor": True},
            },
        },
        # Pages, the API and the calendar feeds: sessions' and keys' answers are per user, never shared;
        # pages must pick up a release at once. Cloudflare would not cache them by default either.
        {
            "action": "set_cache_settings",
            "description": "never cache anything else: pages, the API, the calendar feeds",
            "expression": f"{hosts} and not {static}",
            "action_parameters": {"cache": False},
        },
    ]
