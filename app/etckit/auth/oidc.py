"""Single sign-on through an OpenID provider: authorization code flow with PKCE and nonce.

``begin()`` makes the provider's authorization URL and a *login transaction* (state, nonce,
PKCE verifier). main_server keeps no state, so the transaction travels in a signed, short-lived
cookie bound to the browser that started the login; ``finish()`` checks the callback against
it, exchanges the code (with the verifier) and validates the ID token (signature from the
provider's JWKS, issuer, audience, expiry, nonce). Every failure raises SsoError whose text is
safe to show the user; the details go to the log.
"""

from __future__ import annotations

import logging
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

import httpx
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger(__name__)

with warnings.catch_warnings():
    # authlib >= 1.6 warns at import that it would rather use the httpx2 fork; httpx is what
    # we have, supported by authlib until 2.0. Keep the warning out of the JSON log.
    import authlib.deprecate  # noqa: F401  (it installs an "always" filter: go after it)

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

TRANSACTION_MAX_AGE = 600  # seconds a login may take at the provider
METADATA_TTL = 3600.0


class SsoError(Exception):
    """A login through the provider failed; str(self) is fit for the user's eyes."""


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    name: str
    email: str


class OidcClient:
    def __init__(self, *, issuer: str, client_id: str, client_secret: str, scopes: list[str],
                 redirect_uri: str, ca_file: str = "", secret: bytes) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes if "openid" in scopes else ["openid", *scopes]
        self.redirect_uri = redirect_uri
        self.verify: bool | str = ca_file or True
        self.signer = URLSafeTimedSerializer(secret, salt="etckit.sso.transaction")
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: Any = None

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            self.client_id, self.client_secret, scope=" ".join(self.scopes),
            redirect_uri=self.redirect_uri, code_challenge_method="S256",
            verify=self.verify, timeout=10.0)

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(verify=self.verify, timeout=10.0) as http:
                    response = await http.get(url)
                    response.raise_for_status()
                    data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("OIDC discovery failed: %s", exc, extra={"url": url})
                raise SsoError("The sign-in service cannot be reached right now.") from exc
            if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                log.error("OIDC discovery names another issuer",
                          extra={"expected": self.issuer, "got": data.get("issuer")})
                raise SsoError("The sign-in service is misconfigured (issuer mismatch).")
            self._metadata, self._metadata_at, self._jwks = data, time.monotonic(), None
        return self._metadata

    async def _keys(self, refresh: bool = False) -> Any:
        if self._jwks is None or refresh:
            meta = await self.metadata()
            async with httpx.AsyncClient(verify=self.verify, timeout=10.0) as http:
                response = await http.get(meta["jwks_uri"])
                response.raise_for_status()
                self._jwks = KeySet.import_key_set(response.json())
        return self._jwks

    async def begin(self) -> tuple[str, str]:
        """(URL to send the browser to, signed transaction for the cookie)."""
        meta = await self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], state=state, nonce=nonce,
                code_verifier=verifier)
        transaction = self.signer.dumps({"state": state, "nonce": nonce, "verifier": verifier})
        return url, transaction

    async def finish(self, args: dict[str, str], transaction: str | None) -> Identity:
        """Check the provider's redirect back and return who logged in."""
        if not transaction:
            raise SsoError("This sign-in was not started from this browser, or it took too "
                           "long. Please start again.")
        try:
            txn = self.signer.loads(transaction, max_age=TRANSACTION_MAX_AGE)
        except BadSignature as exc:
            raise SsoError("This sign-in has expired or was tampered with. Please start "
                           "again.") from exc
        given = str(args.get("state", "")).encode("utf-8", "surrogatepass")
        if not secrets.compare_digest(given, str(txn["state"]).encode()):  # bytes: any text
            log.warning("OIDC callback with a state that does not match")
            raise SsoError("The sign-in answer does not belong to this login (state "
                           "mismatch). Please start again.")
        if "error" in args:
            log.info("OIDC provider answered an error", extra={
                "error": args["error"], "description": args.get("error_description", "")})
            detail = args.get("error_description") or args["error"]
            raise SsoError(f"The sign-in service did not log you in: {detail[:200]}")
        code = args.get("code")
        if not code:
            raise SsoError("The sign-in service answered without a code. Please start again.")
        meta = await self.metadata()
        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    meta["token_endpoint"], grant_type="authorization_code", code=code,
                    code_verifier=txn["verifier"], redirect_uri=self.redirect_uri)
        except Exception as exc:  # authlib raises OAuthError, httpx errors, JSON errors
            log.warning("OIDC token exchange failed: %s", exc)
            raise SsoError("The sign-in service refused to complete the login. Please start "
                           "again.") from exc
        id_token = token.get("id_token")
        if not id_token:
            raise SsoError("The sign-in service sent no ID token.")
        claims = dict(await self._validate(id_token, txn["nonce"]))
        if not (claims.get("name") and claims.get("email") and "email_verified" in claims):
            claims = {**await self._userinfo(meta, token, claims["sub"]), **claims}
        return identity_from(self.issuer, claims)

    async def _userinfo(self, meta: dict[str, Any], token: dict[str, Any],
                        subject: str) -> dict[str, Any]:
        """Profile claims from the UserInfo endpoint (many providers keep the ID token lean)."""
        url = meta.get("userinfo_endpoint")
        if not url or not token.get("access_token"):
            return {}
        try:
            async with httpx.AsyncClient(verify=self.verify, timeout=10.0) as http:
                response = await http.get(
                    url, headers={"Authorization": f"Bearer {token['access_token']}"})
                response.raise_for_status()
                info = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("OIDC userinfo failed, going on without it: %s", exc)
            return {}
        if not isinstance(info, dict) or info.get("sub") != subject:
            log.warning("OIDC userinfo is about another subject, ignored")
            return {}
        kept = ("name", "preferred_username", "email", "email_verified")
        return {k: info[k] for k in kept if k in info}

    async def _validate(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims, after checking signature, iss, aud, exp, iat and nonce."""
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "values": [self.issuer, self.issuer + "/"]},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
            nonce={"essential": True, "value": nonce})
        for refresh in (False, True):
            try:
                token = jwt.decode(id_token, await self._keys(refresh))
                registry.validate(token.claims)
                azp = token.claims.get("azp")
                if azp is not None and azp != self.client_id:
                    raise SsoError("The sign-in answer was meant for another application.")
                return token.claims
            except JoseError as exc:
                if not refresh and "key" in type(exc).__name__.lower():
                    continue  # the provider rotated its keys: fetch them again once
                log.warning("OIDC ID token refused: %s: %s", type(exc).__name__, exc)
                what = "nonce" if "nonce" in str(exc).lower() else "ID token"
                raise SsoError(f"The sign-in answer failed its security check ({what}). "
                               "Please start again.") from exc
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("OIDC keys could not be fetched: %s", exc)
                raise SsoError("The sign-in service's keys cannot be fetched.") from exc
        raise AssertionError("unreachable")


def identity_from(issuer: str, claims: dict[str, Any]) -> Identity:
    """The user the provider vouched for. The e-mail is kept only when the provider says it
    verified it (``email_verified`` true): admins (main_server.admins) and shares are named
    by e-mail, and a provider that lets a user type any address must not make them someone
    else."""
    email = str(claims.get("email") or "") if claims.get("email_verified") is True else ""
    return Identity(issuer=issuer, subject=str(claims["sub"]),
                    name=str(claims.get("name") or claims.get("preferred_username") or ""),
                    email=email)
