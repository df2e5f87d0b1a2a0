"""``byollm``: the command line for platform engineers and GitOps authors.

Subcommands: ``seal`` (encrypt a provider key so it can live in git), ``status`` (a table
of LLMConfigs and their conditions), ``crd`` (print the generated CRD), ``dev`` (the whole
product on one machine). Heavy imports happen inside each command so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from byollm.client import LLMConfigView
    from byollm.kube import Kube

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_READY = 3

EXIT_CODES = f"""exit codes:
  {EXIT_OK}  success
  {EXIT_ERROR}  error: the API server refused or could not be reached, sealing failed,
     the local stack failed to start
  {EXIT_USAGE}  usage error: unknown command or bad arguments
  {EXIT_NOT_READY}  status: at least one LLMConfig is not Ready (or none matched)
"""


class CommandError(Exception):
    """A failure to report as one line on stderr with exit code 1."""


@contextlib.contextmanager
def _api_call(kube: Kube, refused: str, unreachable: str = "") -> Iterator[None]:
    """One API conversation: a refusal says what was refused, a transport failure (refused
    connection, TLS, timeout) says the API server cannot be reached; the client is closed."""
    from byollm.kube import KubeError  # here, not at the top: `byollm --help` stays fast

    try:
        yield
    except KubeError as e:
        raise CommandError(f"{refused}: {e}") from None
    except Exception as e:  # urllib3: refused connection, TLS, timeout
        raise CommandError(
            f"{unreachable}cannot reach the API server: {type(e).__name__}"
        ) from None
    finally:
        kube.api.close()  # type: ignore[no-untyped-call]


def _connect(args: argparse.Namespace, namespace: str | None = None) -> Any:
    """(Kube, namespace) from --kubeconfig/--context, $KUBECONFIG or in-cluster."""
    from byollm.client import LLMConfigError, connect
    from byollm.kube import Kube

    try:
        api_client, ns = connect(args.kubeconfig, args.context, namespace)
    except LLMConfigError as e:
        raise CommandError(str(e)) from None
    return Kube(api_client, "byollm-cli"), ns


# --- seal --------------------------------------------------------------------------


def _public_key(args: argparse.Namespace) -> bytes:
    if args.public_key:
        try:
            return Path(args.public_key).read_bytes()
        except OSError as e:
            raise CommandError(f"cannot read {args.public_key}: {e.strerror}") from None
    from byollm.kube import path

    kube, _ = _connect(args)
    where = f"{args.operator_namespace}/{args.configmap}"
    with _api_call(kube, f"cannot read the sealing public key ConfigMap {where}"):
        cm = kube.get(path("v1", "ConfigMap", args.operator_namespace, args.configmap))
    if cm is None:
        raise CommandError(f"the sealing public key ConfigMap {where} does not exist")
    key = (cm.get("data") or {}).get("publicKey")
    if not key:
        raise CommandError(f"ConfigMap {args.configmap} has no publicKey")
    return str(key).encode()


def cmd_seal(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    from byollm import sealing

    pub = _public_key(args)
    try:
        sealed = sealing.seal(sealing.read_secret(stdin), pub, args.namespace, args.name)
    except (sealing.SealError, ValueError) as e:
        raise CommandError(f"seal: {e}") from None
    if args.yaml:
        stdout.write(f"apiKey:\n  sealed: {sealed}\n")
    else:
        stdout.write(sealed + "\n")
    return EXIT_OK


# --- status ------------------------------------------------------------------------


def _status_rows(views: list[LLMConfigView], wide: bool) -> list[list[str]]:
    rows = []
    for v in views:
        ready = v.condition("Ready")
        conds = " ".join(f"{c.type}={c.status}" for c in v.conditions if c.type != "Ready")
        row = [
            v.namespace,
            v.name,
            v.mode + ("" if v.active else " (inactive)"),
            v.serving_mode or "-",
            v.provider or "-",
            v.model or "-",
            v.api_key_prefix or "-",
            ready.status if ready else "Unknown",
            (ready.reason if ready else "") or "-",
            conds or "-",
        ]
        if wide:
            row += [v.endpoint or "-", (ready.message if ready else "") or "-"]
        rows.append(row)
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def cmd_status(args: argparse.Namespace, stdout: TextIO) -> int:
    from byollm import api
    from byollm.client import LLMConfigError, LLMConfigView
    from byollm.kube import path

    kube, namespace = _connect(args, args.namespace)
    with _api_call(kube, "status", unreachable="status: "):
        items = kube.list(
            path(api.API_VERSION, api.KIND, None if args.all_namespaces else namespace)
        )
    views = []
    for obj in items:
        try:
            views.append(LLMConfigView.from_object(obj))
        except LLMConfigError as e:  # stored before a validation rule existed
            meta = obj.get("metadata") or {}
            sys.stderr.write(f"{meta.get('namespace')}/{meta.get('name')}: skipped: {e}\n")
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        sys.stderr.write(f"No LLMConfigs found in {where}.\n")
        return EXIT_NOT_READY
    header = [
        "NAMESPACE",
        "NAME",
        "MODE",
        "SERVING",
        "PROVIDER",
        "MODEL",
        "KEY",
        "READY",
        "REASON",
        "CONDITIONS",
    ]
    if args.output == "wide":
        header += ["ENDPOINT", "MESSAGE"]
    rows = _status_rows(views, args.output == "wide")
    stdout.write(_table(header, rows))
    return EXIT_OK if all(r[7] == "True" for r in rows) else EXIT_NOT_READY


# --- crd / dev ---------------------------------------------------------------------


def cmd_crd(stdout: TextIO) -> int:
    from byollm.api import crd_yaml

    stdout.write(crd_yaml())
    return EXIT_OK


def cmd_dev(args: argparse.Namespace) -> int:
    try:
        from byollm_dev import dev
    except ImportError:  # the dev tools are not shipped: they need a source checkout
        raise CommandError(
            "byollm dev runs from a source checkout of byollm: run hack/dev.sh there"
        ) from None

    return dev.run(
        upstream_url=args.upstream_url,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        example=not args.no_example,
        namespace=args.namespace,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        model=args.model,
        api_key=os.environ.get(args.api_key_env) if args.api_key_env else None,
        upstream=args.upstream,
    )


# --- parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="byollm",
        description="byollm: bring-your-own-LLM for Kubernetes.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def kube_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
        )
        sp.add_argument("--context", help="kubeconfig context")

    s = sub.add_parser(
        "seal",
        help="encrypt a provider API key (read from stdin) for spec.provider.apiKey.sealed",
        description="Encrypt a provider API key read from stdin so that only the operator can "
        "open it, and only for the LLMConfig NAMESPACE/NAME. The output is safe to commit to "
        "git.\n\n"
        '  printf %s "$OPENAI_KEY" |\n'
        "    byollm seal -n tenant-acme --name acme --public-key byollm.pub",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    s.add_argument("-n", "--namespace", required=True, help="namespace of the LLMConfig")
    s.add_argument("--name", required=True, help="name of the LLMConfig")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--public-key", metavar="FILE", help="the operator's sealing public key (PEM)")
    kube_flags(s)
    s.add_argument(
        "--operator-namespace",
        default="byollm-system",
        help="where the operator runs (default: byollm-system)",
    )
    s.add_argument(
        "--configmap",
        default="byollm-sealing-public-key",
        help="public-key ConfigMap (default: byollm-sealing-public-key)",
    )
    s.add_argument("--yaml", action="store_true", help="print an apiKey: YAML snippet")

    st = sub.add_parser(
        "status",
        help="table of LLMConfigs with their conditions",
        description="List LLMConfigs with mode, provider, model, key prefix and conditions.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    where = st.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    where.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    st.add_argument("-o", "--output", choices=["table", "wide"], default="table")
    kube_flags(st)

    sub.add_parser(
        "crd",
        help="print the LLMConfig CustomResourceDefinition (YAML)",
        description="Print the CRD generated from the Python models (kubectl apply -f -).",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )

    d = sub.add_parser(
        "dev",
        help="run byollm locally: control plane, operator, routers as local processes",
        description="Start a local Kubernetes control plane (built once from Go modules and "
        "cached), install the CRD and least-privilege RBAC, run the operator, run every "
        "router Deployment's pod as a local process on 127.0.0.1 with exactly the env the "
        "operator wrote, start a local model (SmolLM2-135M on llama-cpp-python's "
        "OpenAI-compatible server, built and cached on first use) as the example tenant's "
        "provider, apply an example LLMConfig, ask it one question through the tenant's "
        "router and print how to chat through it. Ctrl-C stops everything.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    up = d.add_mutually_exclusive_group()
    up.add_argument(
        "--upstream",
        choices=["model", "stub"],
        default="model",
        help="what to start as the example's provider: the local model (default; built on "
        "first use, ~5-10 min) or an instant echo stub",
    )
    up.add_argument(
        "--upstream-url",
        help="OpenAI-compatible base URL instead, e.g. a llama.cpp or Ollama server "
        "on this machine (http://127.0.0.1:8080/v1) or a provider (https://api.groq.com/openai/v1)",
    )
    d.add_argument(
        "--model",
        help="default model of the example LLMConfig (default: the local model's, or stub-model)",
    )
    d.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the upstream's API key (default: a dummy key)",
    )
    d.add_argument(
        "--state-dir",
        help="control plane state and logs (default: ~/.cache/byollm/dev-state, reused and "
        "reset on each run)",
    )
    d.add_argument(
        "-n", "--namespace", default="byollm-dev", help="tenant namespace (default: byollm-dev)"
    )
    d.add_argument("--no-example", action="store_true", help="do not apply the example LLMConfig")
    d.add_argument("--ready-file", help=argparse.SUPPRESS)  # tests: JSON written when ready
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "seal":
            return cmd_seal(args, sys.stdin, sys.stdout)
        if args.command == "status":
            return cmd_status(args, sys.stdout)
        if args.command == "crd":
            return cmd_crd(sys.stdout)
        return cmd_dev(args)
    except CommandError as e:
        sys.stderr.write(f"byollm: {e}\n")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
