"""Portal SDK: manage a tenant's LLMConfig (and its key Secret) from Python.

Stripe-like verbs over the one Kubernetes layer (:mod:`byollm.kube`) and the API models
(:mod:`byollm.api`): ``create`` takes every required field, ``update`` changes only what
it is given (everything else keeps its value: a model change leaves routing, ``active``
and a custom provider's base URL alone), ``replace`` states the whole config, ``get``,
``list``, ``delete``, and ``toggle`` / ``revert_to_managed`` return the state after the
operator acted. Writes are server-side applies under the SDK's own field manager.

    import byollm

    llm = byollm.Client(namespace="tenant-acme")   # kubeconfig or in-cluster, like OpenAI()
    llm.create("acme", provider="openai", default_model="gpt-4o-mini", api_key="sk-...")
    view = llm.wait_ready("acme")
    print(view.endpoint, view.api_key_prefix)       # never the key itself
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import pydantic
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from byollm import api
from byollm.kube import Kube, KubeError, path
from byollm_router.contract import LLM_KEY_LABEL

FIELD_MANAGER: Final = "byollm-sdk"
KEY_SECRET_SUFFIX: Final = "-byo-key"
KEY_SECRET_KEY: Final = "apiKey"
PART_OF: Final = {
    "app.kubernetes.io/part-of": "byollm",
    "app.kubernetes.io/managed-by": FIELD_MANAGER,
}
_IN_CLUSTER_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class _NotGiven(enum.Enum):
    """Marks an argument that was not passed (``None`` means "clear this field")."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven.NOT_GIVEN
T = TypeVar("T")


# --- errors ---------------------------------------------------------------------------


class LLMConfigError(Exception):
    """Any failure of the SDK; ``status`` is the HTTP status from the API server (0 if none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ValidationError(LLMConfigError):
    """The SDK's models or the API server refused a field.

    ``field`` is the first offending field path (``spec.provider.baseURL``, or the argument
    name such as ``api_key``), ``causes`` every (field, message) pair. Messages name fields,
    never the refused value.
    """

    def __init__(
        self, message: str, field: str, causes: list[tuple[str, str]], status: int = 422
    ) -> None:
        super().__init__(message, status)
        self.field = field
        self.causes = causes


class NotFoundError(LLMConfigError):
    """The LLMConfig does not exist."""


class AlreadyExistsError(LLMConfigError):
    """``create`` of a name that exists (use ``update`` or ``replace``)."""


class NotReadyError(LLMConfigError):
    """A wait ran out of time; ``view`` is the last state seen (None if the object is gone)."""

    def __init__(self, message: str, view: LLMConfigView | None) -> None:
        super().__init__(message)
        self.view = view


def _from_kube(e: KubeError) -> LLMConfigError:
    if e.status == 404:
        return NotFoundError(e.message, e.status)
    if e.status == 409 and e.reason == "AlreadyExists":
        return AlreadyExistsError(e.message, e.status)
    if e.status == 422 or e.reason == "Invalid":
        first = e.causes[0][0] if e.causes else ""
        return ValidationError(e.message, first, list(e.causes), e.status)
    return LLMConfigError(e.message, e.status)


def _from_pydantic(e: pydantic.ValidationError) -> ValidationError:
    """The models' refusal as the API server would phrase it: field path, then words."""
    causes: list[tuple[str, str]] = []
    for err in e.errors(include_input=False, include_url=False):
        where = ".".join(["spec", *(str(p) for p in err["loc"])])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if msg.startswith("spec.") and ": " in msg:  # a rule that names its own field
            where, msg = msg.split(": ", 1)
        causes.append((where, msg))
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    return ValidationError(f"LLMConfig is invalid: {text}", causes[0][0], causes)


# --- the view -------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMConfigView:
    """An LLMConfig as a portal may show it: the API models, never the key (its first 8
    characters at most, in ``api_key_prefix``)."""

    name: str
    namespace: str
    generation: int
    spec: api.LLMConfigSpec
    status: api.LLMConfigStatus

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> LLMConfigView:
        """Parse an object as the API server returns it."""
        try:
            model = api.LLMConfig.model_validate(obj)
        except pydantic.ValidationError as e:  # stored before a rule existed
            raise _from_pydantic(e) from None
        meta = model.metadata
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            generation=int(meta.get("generation", 1)),
            spec=model.spec,
            status=model.status or api.LLMConfigStatus(),
        )

    @property
    def mode(self) -> str:
        """The desired mode (spec.mode): BYO or Managed."""
        return self.spec.mode.value

    @property
    def active(self) -> bool:
        """False: the BYO config is kept but Managed is served (a toggle)."""
        return self.spec.active

    @property
    def serving_mode(self) -> str | None:
        """What the router serves now (status.mode): Managed when active is false."""
        return self.status.mode.value if self.status.mode else None

    @property
    def provider(self) -> str | None:
        """The configured provider type (kept while toggled off)."""
        return self.spec.provider.type.value if self.spec.provider else None

    @property
    def model(self) -> str | None:
        """The configured default model (kept while toggled off)."""
        return self.spec.provider.default_model if self.spec.provider else None

    @property
    def base_url(self) -> str | None:
        """The provider base URL the router uses (the type's default when not set)."""
        return self.spec.provider.effective_base_url() if self.spec.provider else None

    @property
    def api_key_prefix(self) -> str | None:
        """First 8 characters of the stored key (also while toggled off); never more."""
        return self.status.api_key_prefix

    @property
    def endpoint(self) -> str | None:
        """The router's OpenAI-compatible base URL (in-cluster)."""
        return self.status.endpoint

    @property
    def observed_generation(self) -> int | None:
        return self.status.observed_generation

    @property
    def conditions(self) -> tuple[api.Condition, ...]:
        return tuple(self.status.conditions or ())

    def condition(self, type_: str) -> api.Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def observed(self) -> bool:
        """The operator has acted on the current generation."""
        return (self.observed_generation or 0) >= self.generation

    @property
    def ready(self) -> bool:
        """Ready=True computed from the current generation (not a stale status)."""
        c = self.condition("Ready")
        return c is not None and c.status == "True" and self.observed

    @property
    def settled(self) -> bool:
        """The operator acted on the current generation and the router is not mid-rollout:
        Ready, or a condition that says why not (bad key, blocked URL ...)."""
        if not self.observed:
            return False
        if self.ready:
            return True
        router = self.condition("RouterAvailable")
        return router is not None and router.reason not in ("RollingOut", "Pending")


def key_secret_name(name: str) -> str:
    """The Secret the SDK keeps the tenant's key in (``<name>-byo-key``, key ``apiKey``)."""
    return f"{name}{KEY_SECRET_SUFFIX}"


# --- connection -----------------------------------------------------------------------


def connect(
    kubeconfig: str | None, context: str | None, namespace: str | None
) -> tuple[k8s.ApiClient, str]:
    """An ApiClient and a namespace from the environment: in-cluster when running in a pod
    (and no kubeconfig is named), else the kubeconfig ($KUBECONFIG, ~/.kube/config)."""
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if explicit is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
            if namespace is None and _IN_CLUSTER_NAMESPACE.exists():
                namespace = _IN_CLUSTER_NAMESPACE.read_text().strip()
            return k8s.ApiClient(), namespace or "default"
        # $KUBECONFIG read now (the client reads it once, at import time)
        api_client = k8s_config.new_client_from_config(config_file=explicit, context=context)  # type: ignore[no-untyped-call]
        if namespace is None:
            contexts, active = k8s_config.list_kube_config_contexts(config_file=explicit)  # type: ignore[no-untyped-call]
            if context is not None:
                active = next((c for c in contexts if c.get("name") == context), active)
            namespace = (active or {}).get("context", {}).get("namespace")
    except Exception as e:
        raise LLMConfigError(f"cannot load the Kubernetes configuration: {e}") from None
    return api_client, namespace or "default"


# --- the client -----------------------------------------------------------------------


class Client:
    """The LLMConfigs of one namespace (a tenant), with the key Secret managed alongside.

    ``Client()`` reads the environment as ``OpenAI()`` does: in a pod, the in-cluster
    service account and namespace; elsewhere ``$KUBECONFIG`` (or ``~/.kube/config``) and its
    context's namespace. Pass ``api_client`` to reuse a configured ``kubernetes.ApiClient``.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        api_client: k8s.ApiClient | None = None,
        field_manager: str = FIELD_MANAGER,
        timeout: float = 60.0,
        poll_interval: float = 0.3,
    ) -> None:
        if api_client is None:
            api_client, namespace = connect(kubeconfig, context, namespace)
        self.api_client = api_client
        self.namespace = namespace or "default"
        self.kube = Kube(api_client, field_manager)
        self.timeout = timeout
        self.poll_interval = poll_interval

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        return path(api.API_VERSION, api.KIND, self.namespace, name)

    def _secret_path(self, name: str) -> str:
        return path("v1", "Secret", self.namespace, name)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except KubeError as e:
            raise _from_kube(e) from None
        except LLMConfigError:
            raise
        except Exception as e:  # urllib3: refused connection, TLS, timeout
            raise LLMConfigError(f"cannot reach the API server: {type(e).__name__}") from None

    def _raw(self, name: str) -> dict[str, Any]:
        return self._call(lambda: self.kube.request("GET", self._path(name)))

    def _manifest(
        self, name: str, spec: api.LLMConfigSpec, resource_version: str | None = None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version  # optimistic concurrency
        return {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": meta,
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    def _key_secret(self, name: str, api_key: str, owner_uid: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": key_secret_name(name),
            "namespace": self.namespace,
            "labels": {**PART_OF, "byollm.io/llmconfig": name, LLM_KEY_LABEL: "true"},
        }
        if owner_uid is not None:  # deleting the LLMConfig garbage-collects the key too
            meta["ownerReferences"] = [
                {"apiVersion": api.API_VERSION, "kind": api.KIND, "name": name, "uid": owner_uid}
            ]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": "Opaque",
            "data": {KEY_SECRET_KEY: base64.b64encode(api_key.encode()).decode()},
        }

    def _key_ref(self, name: str) -> api.ApiKeySource:
        return api.ApiKeySource(
            secret_key_ref=api.SecretKeyRef(name=key_secret_name(name), key=KEY_SECRET_KEY)
        )

    @staticmethod
    def _check_key(api_key: str) -> None:
        if not api_key.strip():
            raise ValidationError("api_key: must not be empty", "api_key", [])

    def _write(
        self,
        name: str,
        spec: api.LLMConfigSpec,
        api_key: str | None,
        write: Callable[[dict[str, Any], bool], dict[str, Any]],
        resource_version: str | None = None,
    ) -> LLMConfigView:
        """Dry-run the LLMConfig (so a refused field writes nothing, not even the key), write
        the key Secret, write the LLMConfig, then let the LLMConfig own the Secret."""
        manifest = self._manifest(name, spec, resource_version)
        self._call(lambda: write(manifest, True))
        if api_key is not None:
            self._call(lambda: self.kube.apply(self._key_secret(name, api_key, None)))
        obj = self._call(lambda: write(manifest, False))
        if api_key is not None:
            uid = obj["metadata"]["uid"]
            self._call(lambda: self.kube.apply(self._key_secret(name, api_key, uid)))
        return LLMConfigView.from_object(obj)

    def _apply(self, manifest: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        return self.kube.apply(manifest, dry_run=dry_run)

    def _create(self, manifest: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        """A dry-run create (refused if the name exists), then a server-side apply: every
        field is then owned by the SDK's apply, so a later update can also clear one."""
        if not dry_run:
            return self.kube.apply(manifest)
        query = [("fieldManager", self.kube.field_manager), ("dryRun", "All")]
        return self.kube.request("POST", self._path(), body=manifest, query=query)

    def _put(self, manifest: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        query = [("fieldManager", self.kube.field_manager)]
        if dry_run:
            query.append(("dryRun", "All"))
        return self.kube.request("PUT", self._path(manifest["metadata"]["name"]), manifest, query)

    def _wait(
        self, name: str, until: Callable[[LLMConfigView], bool], what: str, timeout: float | None
    ) -> LLMConfigView:
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        view: LLMConfigView | None = None
        while True:
            try:
                view = self.get(name)
                if until(view):
                    return view
            except NotFoundError:
                view = None
            if time.monotonic() >= deadline:
                raise NotReadyError(_not_reached(self.namespace, name, what, limit, view), view)
            time.sleep(self.poll_interval)

    # --- the verbs --------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        provider: str,
        default_model: str,
        api_key: str,
        base_url: str | None = None,
        routing: Mapping[str, Any] | None = None,
        active: bool = True,
        azure_api_version: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> LLMConfigView:
        """Create a BYO config and its key Secret (:class:`AlreadyExistsError` if the name
        exists). ``routing`` is ``spec.routing`` as in the CRD: ``{"auto": True, "models":
        {"fast": ...}}``. ``wait=True`` returns once the router serves it (Ready)."""
        self._check_key(api_key)
        spec = _spec(
            {
                "mode": "BYO",
                "active": active,
                "provider": _provider(
                    provider, default_model, base_url, azure_api_version, self._key_ref(name)
                ),
                **({"routing": dict(routing)} if routing is not None else {}),
            }
        )
        view = self._write(name, spec, api_key, self._create)
        return self.wait_ready(name, timeout) if wait else view

    def update(
        self,
        name: str,
        *,
        provider: str | _NotGiven = NOT_GIVEN,
        default_model: str | _NotGiven = NOT_GIVEN,
        api_key: str | _NotGiven = NOT_GIVEN,
        base_url: str | _NotGiven | None = NOT_GIVEN,
        routing: Mapping[str, Any] | _NotGiven = NOT_GIVEN,
        active: bool | _NotGiven = NOT_GIVEN,
        azure_api_version: str | _NotGiven | None = NOT_GIVEN,
        mode: Literal["BYO", "Managed"] | _NotGiven = NOT_GIVEN,
        wait: bool = False,
        timeout: float | None = None,
    ) -> LLMConfigView:
        """Change only the fields passed; every other field keeps its value.

        ``base_url=None`` (or ``azure_api_version=None``) clears that field; ``api_key``
        stores a new key. ``routing`` merges into the current table (a category set to
        ``None`` is removed). ``wait=True`` returns once the operator acted (see
        :meth:`toggle`).
        """
        for _ in range(5):  # optimistic concurrency: retry when someone wrote in between
            obj = self._raw(name)
            current = LLMConfigView.from_object(obj)
            data = current.spec.model_dump(by_alias=True, exclude_none=True)
            prov: dict[str, Any] = data.get("provider") or {}
            for key, value in (
                ("type", provider),
                ("defaultModel", default_model),
                ("baseURL", base_url),
            ):
                if value is not NOT_GIVEN:
                    prov[key] = value
            if azure_api_version is not NOT_GIVEN:
                prov["azure"] = (
                    {"apiVersion": azure_api_version} if azure_api_version is not None else None
                )
            if api_key is not NOT_GIVEN:
                self._check_key(api_key)
                prov["apiKey"] = self._key_ref(name).model_dump(by_alias=True, exclude_none=True)
            if prov:
                data["provider"] = {k: v for k, v in prov.items() if v is not None}
            if mode is not NOT_GIVEN:
                data["mode"] = mode
            if active is not NOT_GIVEN:
                data["active"] = active
            if routing is not NOT_GIVEN:
                data["routing"] = _merge(data.get("routing") or {}, dict(routing))
            spec = _spec(data)
            rv = obj["metadata"].get("resourceVersion")
            new_key = None if isinstance(api_key, _NotGiven) else api_key
            try:
                view = self._write(name, spec, new_key, self._apply, rv)
            except LLMConfigError as e:
                if e.status == 409:
                    continue
                raise
            return self._wait(name, _settled, "settled", timeout) if wait else view
        raise LLMConfigError(f"{self.namespace}/{name}: kept changing during update", 409)

    modify = update

    def replace(
        self,
        name: str,
        *,
        provider: str,
        default_model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        routing: Mapping[str, Any] | None = None,
        active: bool = True,
        azure_api_version: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> LLMConfigView:
        """State the whole BYO config: fields not passed go back to their defaults.
        ``api_key=None`` keeps the key the SDK stored."""
        if api_key is None:
            if self._call(lambda: self.kube.get(self._secret_path(key_secret_name(name)))) is None:
                raise ValidationError(
                    "api_key: required (no key stored yet for this LLMConfig)", "api_key", []
                )
        else:
            self._check_key(api_key)
        spec = _spec(
            {
                "mode": "BYO",
                "active": active,
                "provider": _provider(
                    provider, default_model, base_url, azure_api_version, self._key_ref(name)
                ),
                **({"routing": dict(routing)} if routing is not None else {}),
            }
        )
        rv = self._raw(name)["metadata"].get("resourceVersion")
        view = self._write(name, spec, api_key, self._put, rv)
        return self.wait_ready(name, timeout) if wait else view

    def get(self, name: str) -> LLMConfigView:
        """The config as a portal may show it (raises :class:`NotFoundError`)."""
        return LLMConfigView.from_object(self._raw(name))

    def list(self) -> list[LLMConfigView]:
        """Every LLMConfig of the namespace."""
        items = self._call(lambda: self.kube.list(self._path()))
        return [LLMConfigView.from_object(o) for o in items]

    def delete(self, name: str) -> None:
        """Delete the LLMConfig (its router goes with it) and the SDK's key Secret."""
        try:
            self._call(
                lambda: self.kube.request(
                    "DELETE", self._path(name), query=[("propagationPolicy", "Background")]
                )
            )
        finally:
            with contextlib.suppress(NotFoundError):
                self._call(
                    lambda: self.kube.request("DELETE", self._secret_path(key_secret_name(name)))
                )

    def toggle(
        self, name: str, active: bool, *, wait: bool = True, timeout: float | None = None
    ) -> LLMConfigView:
        """Keep the BYO config but serve Managed (``False``) or BYO again (``True``).

        Returns the state after the operator acted (the router serves the new mode, or a
        condition says why not); ``wait=False`` returns at once.
        """
        view = self.update(name, active=active)
        return self._wait(name, _settled, "settled", timeout) if wait else view

    def revert_to_managed(
        self, name: str, *, wait: bool = True, timeout: float | None = None
    ) -> LLMConfigView:
        """Mode Managed: the provider config is dropped, the router's four BYO keys are
        wiped and the stored key is deleted. Returns the state after the operator acted."""
        for _ in range(5):
            obj = self._raw(name)
            current = LLMConfigView.from_object(obj)
            data = current.spec.model_dump(by_alias=True, exclude_none=True)
            data.pop("provider", None)
            data |= {"mode": "Managed", "active": True}
            try:
                view = self._write(
                    name, _spec(data), None, self._apply, obj["metadata"].get("resourceVersion")
                )
            except LLMConfigError as e:
                if e.status == 409:
                    continue
                raise
            with contextlib.suppress(NotFoundError):
                self._call(
                    lambda: self.kube.request("DELETE", self._secret_path(key_secret_name(name)))
                )
            return self._wait(name, _settled, "settled", timeout) if wait else view
        raise LLMConfigError(f"{self.namespace}/{name}: kept changing during revert", 409)

    def wait_ready(self, name: str, timeout: float | None = None) -> LLMConfigView:
        """Poll until Ready=True for the current generation; :class:`NotReadyError` if not."""
        return self._wait(name, _ready, "Ready", timeout)


def _ready(view: LLMConfigView) -> bool:
    return view.ready


def _settled(view: LLMConfigView) -> bool:
    return view.settled


def _not_reached(
    namespace: str, name: str, what: str, timeout: float, view: LLMConfigView | None
) -> str:
    cond = view.condition("Ready") if view else None
    detail = f"{cond.reason}: {cond.message}" if cond else "no Ready condition yet"
    return f"{namespace}/{name} not {what} after {timeout}s ({detail})"


def _provider(
    type_: str,
    default_model: str,
    base_url: str | None,
    azure_api_version: str | None,
    key: api.ApiKeySource,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type_,
        "defaultModel": default_model,
        "apiKey": key.model_dump(by_alias=True, exclude_none=True),
    }
    if base_url is not None:
        out["baseURL"] = base_url
    if azure_api_version is not None:
        out["azure"] = {"apiVersion": azure_api_version}
    return out


def _merge(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``change`` merged into ``current`` (JSON merge patch: None removes a key)."""
    out = dict(current)
    for k, v in change.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _spec(data: Mapping[str, Any]) -> api.LLMConfigSpec:
    """Validate with the API models: refused here exactly as the API server would."""
    try:
        return api.LLMConfigSpec.model_validate(data)
    except pydantic.ValidationError as e:
        raise _from_pydantic(e) from None


# --- asyncio ----------------------------------------------------------------------------


class AsyncClient:
    """The same verbs for asyncio portals (FastAPI ...): each API call runs in a worker
    thread and waits sleep with ``asyncio.sleep``, so the event loop never blocks and a
    cancelled wait stops polling."""

    def __init__(self, namespace: str | None = None, **kwargs: Any) -> None:
        self.sync = Client(namespace, **kwargs)

    @property
    def namespace(self) -> str:
        return self.sync.namespace

    def close(self) -> None:
        self.sync.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _wait(
        self, name: str, until: Callable[[LLMConfigView], bool], what: str, timeout: float | None
    ) -> LLMConfigView:
        limit = self.sync.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        view: LLMConfigView | None = None
        while True:
            try:
                view = await self.get(name)
                if until(view):
                    return view
            except NotFoundError:
                view = None
            if loop.time() >= deadline:
                raise NotReadyError(_not_reached(self.namespace, name, what, limit, view), view)
            await asyncio.sleep(self.sync.poll_interval)

    async def create(
        self, name: str, *, wait: bool = False, timeout: float | None = None, **fields: Any
    ) -> LLMConfigView:
        """See :meth:`Client.create`."""
        view = await asyncio.to_thread(self.sync.create, name, **fields)
        return await self._wait(name, _ready, "Ready", timeout) if wait else view

    async def update(
        self, name: str, *, wait: bool = False, timeout: float | None = None, **fields: Any
    ) -> LLMConfigView:
        """See :meth:`Client.update`."""
        view = await asyncio.to_thread(self.sync.update, name, **fields)
        return await self._wait(name, _settled, "settled", timeout) if wait else view

    modify = update

    async def replace(
        self, name: str, *, wait: bool = False, timeout: float | None = None, **fields: Any
    ) -> LLMConfigView:
        """See :meth:`Client.replace`."""
        view = await asyncio.to_thread(self.sync.replace, name, **fields)
        return await self._wait(name, _ready, "Ready", timeout) if wait else view

    async def get(self, name: str) -> LLMConfigView:
        return await asyncio.to_thread(self.sync.get, name)

    async def list(self) -> list[LLMConfigView]:
        return await asyncio.to_thread(self.sync.list)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.sync.delete, name)

    async def toggle(
        self, name: str, active: bool, *, wait: bool = True, timeout: float | None = None
    ) -> LLMConfigView:
        """See :meth:`Client.toggle`."""
        view = await asyncio.to_thread(self.sync.toggle, name, active, wait=False)
        return await self._wait(name, _settled, "settled", timeout) if wait else view

    async def revert_to_managed(
        self, name: str, *, wait: bool = True, timeout: float | None = None
    ) -> LLMConfigView:
        """See :meth:`Client.revert_to_managed`."""
        view = await asyncio.to_thread(self.sync.revert_to_managed, name, wait=False)
        return await self._wait(name, _settled, "settled", timeout) if wait else view

    async def wait_ready(self, name: str, timeout: float | None = None) -> LLMConfigView:
        """Poll with ``asyncio.sleep`` until Ready (cancellable)."""
        return await self._wait(name, _ready, "Ready", timeout)
