"""Rules a mutation run showed no test would notice breaking (issue 15, row 17): each test here
fails on a named mutant of the security modules — `make mutation` (tools/mutation.py) finds
such survivors; docs/testing.md says how to run it. Server-visible rules are checked against
the real server through the real client; the tokens file's entry checks and the redaction of
URLs in text are pure functions and are checked as such."""

from __future__ import annotations

import grpc
import pytest

import llmconfig
from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc
from llmconfig_server.access import guard as access
from llmconfig_server.access import tokens
from llmconfig_server.access.listeners import Listener, parse_listener
from llmconfig_server.access.tokens import TokensFileError, digest_of
from llmconfig_server.support.redact import has_credentials, redact_text, redact_url

import pki
import providers
from conftest import ANTHROPIC_KEY

RESOLVER, HEALTHER, EVERYTHING = "llmc_resolver-token", "llmc_health-token", "llmc_all-token"


def tokens_yaml() -> str:
    entries = [("runner", RESOLVER, "[resolve]"), ("daemon", HEALTHER, "[health]"),
               ("admin", EVERYTHING, "[resolve, secrets, health]")]
    return "tokens:\n" + "".join(
        f"  - name: {name}\n    sha256: {digest_of(token)}\n    scopes: {scopes}\n"
        for name, token, scopes in entries)


@pytest.fixture
def guarded(serve, workspace):
    """A server with a tokens file; returns a function giving a client with a given token."""
    path = workspace.write("tokens.yaml", tokens_yaml())
    first = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, args=["--tokens-file", str(path)])
    made: list[llmconfig.Client] = []

    def client(token: str) -> llmconfig.Client:
        made.append(llmconfig.Client(first.target, token=token))
        return made[-1]

    yield client
    for each in made:
        each.close()


# -- tokens: who is authenticated -------------------------------------------------------------

@pytest.mark.parametrize("forged", [RESOLVER[:8], RESOLVER[:-1], RESOLVER + "x",
                                    RESOLVER[:8] + "-something-else"])
def test_a_proven_token_does_not_admit_tokens_that_share_its_start(guarded, forged):
    assert guarded(RESOLVER).resolve().config.provider == "anthropic"  # now proven (cached)
    with pytest.raises(llmconfig.Unauthenticated) as caught:
        guarded(forged).resolve()
    assert caught.value.reason == "TOKEN_UNKNOWN"


def test_only_the_authorization_key_carries_the_token(guarded):
    target = guarded(RESOLVER).target
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.LLMConfigServiceStub(channel)
        for key in ("auth", "authorization-x", "auth-token", "x-authorization"):
            with pytest.raises(grpc.RpcError) as caught:
                stub.ResolveLLMConfig(pb.ResolveLLMConfigRequest(), timeout=5,
                                      metadata=((key, f"Bearer {RESOLVER}"),))
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED, key
            assert "requires a token" in caught.value.details(), key


# -- scopes: what each RPC needs --------------------------------------------------------------

def test_watch_is_open_to_the_resolve_scope(guarded):
    change = next(guarded(RESOLVER).watch())
    assert change.resolved is not None and change.resolved.config.provider == "anthropic"


def test_watch_is_closed_to_a_token_with_only_the_health_scope(guarded):
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        next(guarded(HEALTHER).watch())
    assert caught.value.reason == "SCOPE_MISSING"
    assert "lacks the 'resolve' scope" in caught.value.message


def test_list_models_needs_the_resolve_scope(guarded):
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        guarded(HEALTHER).list_models()
    assert "lacks the 'resolve' scope" in caught.value.message
    assert guarded(RESOLVER).list_models()


def test_every_rpc_of_the_service_has_the_scope_the_contract_names():
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["LLMConfigService"].methods}
    assert access.SCOPE_FOR_RPC == {
        "ResolveLLMConfig": "resolve", "ResolveRunnerConfig": "resolve",
        "WatchLLMConfig": "resolve", "ListModels": "resolve", "CheckProviderHealth": "health",
    }
    assert set(access.SCOPE_FOR_RPC) == methods


def test_an_rpc_missing_from_the_scope_table_is_closed_even_to_a_token_with_every_scope(
        workspace):
    table = tokens.load(workspace.write("tokens.yaml", tokens_yaml()))
    guard = access.AccessGuard(lambda: table)
    authorization = [("authorization", f"Bearer {EVERYTHING}")]
    assert guard._authorize("ResolveLLMConfig", authorization).name == "admin"
    with pytest.raises(access.Denied) as caught:
        guard._authorize("SomeNewRpc", authorization)
    assert caught.value.status.code is grpc.StatusCode.PERMISSION_DENIED
    assert "(none defined)" in caught.value.status.details


# -- probes reach only the configured targets -------------------------------------------------

def test_a_probe_target_is_the_configured_url_itself_not_one_starting_with_it(serve, emulators):
    ollama = providers.ollama()
    emulators.append(ollama)
    client = serve(env={"OLLAMA_BASE_URL": ollama.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    for extended in (ollama.url + "/elsewhere", ollama.url + "/x/y"):
        with pytest.raises(llmconfig.PermissionDenied) as caught:
            client.check_health(provider="ollama", base_url=extended)
        assert caught.value.reason == "PROBE_TARGET_NOT_ALLOWED"
    with pytest.raises(llmconfig.PermissionDenied) as caught:
        client.check_health(provider="anthropic",
                            base_url="https://api.anthropic.com.evil.example")
    assert caught.value.reason == "PROBE_TARGET_NOT_ALLOWED"
    assert ollama.requests == []


# -- the cascade: a contradiction inside one layer is an error --------------------------------

def test_a_base_url_of_another_provider_in_the_providers_own_layer_is_refused(serve):
    client = serve(env={"STIGMER_LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "STIGMER_LLM_BASE_URL": "https://api.openai.com/v1"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve()
    violation = caught.value.violations[0]
    assert (violation.subject, violation.reason) == ("STIGMER_LLM_BASE_URL", "PROVIDER_MISMATCH")


# -- a broken reload: answers carry the warning -----------------------------------------------

def test_an_answer_remembered_before_a_broken_reload_comes_back_with_its_warning(
        serve, servers, workspace):
    path = workspace.write("config.yaml", "local:\n  llm:\n    model: claude-sonnet-5.5\n")
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   args=["--config", str(path), "--reload-interval", "0"])
    assert not any("could not be reloaded" in w for w in client.resolve().warnings)
    assert not any("could not be reloaded" in w for w in client.resolve().warnings)  # remembered
    path.write_text("local:\n  llm:\n    model: [unclosed\n")
    assert servers[0].reload() == "failed"
    assert any("could not be reloaded" in w for w in client.resolve().warnings)


# -- redaction: the whole userinfo, however many `@` it holds ---------------------------------

@pytest.mark.parametrize(("text", "shown"), [
    ("proxy https://user:p@ss@proxy.example:8080/x failed",
     "proxy https://***@proxy.example:8080/x failed"),
    ("https://u:a@b@c@host/", "https://***@host/"),
    ("redis default:p@ss@redis:6379 refused", "redis ***@redis:6379 refused"),
])
def test_redaction_hides_a_password_holding_an_at_sign(text, shown):
    assert redact_text(text) == shown
    assert "ss@" not in redact_text(text) and "b@" not in redact_text(text)


def test_a_url_with_an_at_sign_in_its_password_is_redacted_up_to_the_host():
    assert redact_url("https://user:p@ss@proxy.example/v1") == "https://***@proxy.example/v1"


# -- the tokens file: every entry check -------------------------------------------------------

GOOD = digest_of("llmc_good")


def entry(name: object = "runner", sha256: object = GOOD, scopes: object = "[resolve]",
          extra: str = "") -> str:
    return f"tokens:\n  - name: {name}\n    sha256: {sha256}\n    scopes: {scopes}\n{extra}"


@pytest.mark.parametrize(("text", "says"), [
    ("tokens: [runner]\n", "tokens[0]: expected a mapping"),
    (entry(extra="    note: hi\n"), "tokens[0]: unknown key note"),
    (entry(name="''"), "tokens[0].name: must be 1–64"),
    (entry(name="-runner"), "tokens[0].name: must be 1–64"),
    (entry(name="a" * 65), "tokens[0].name: must be 1–64"),
    (entry(name="12"), "tokens[0].name: must be 1–64"),  # a number, not a string
    ("tokens:\n  - sha256: " + GOOD + "\n    scopes: [resolve]\n", "tokens[0].name"),
    (entry(sha256="llmc_pasted-the-token-itself"), "tokens[0].sha256: must be the 64 hex"),
    (entry(sha256=GOOD[:63]), "tokens[0].sha256: must be the 64 hex"),
    (entry(sha256=GOOD + "0"), "tokens[0].sha256: must be the 64 hex"),
    (entry(sha256="g" * 64), "tokens[0].sha256: must be the 64 hex"),
    ("tokens:\n  - name: runner\n    scopes: [resolve]\n", "tokens[0].sha256"),
    (entry(scopes="[]"), "tokens[0].scopes: must be a non-empty list"),
    (entry(scopes="resolve"), "tokens[0].scopes: must be a non-empty list"),
    (entry(scopes="[resolve, admin]"), "tokens[0].scopes: unknown scope 'admin'"),
    (entry(scopes="[1]"), "tokens[0].scopes: an entry is not a scope name"),
    (entry(scopes="{resolve: yes}"), "tokens[0].scopes: must be a non-empty list"),
    (entry(scopes="[resolvex]"), "tokens[0].scopes: unknown scope 'resolvex' (did you mean"),
    ("tokens:\n  - name: runner\n    sha256: " + GOOD + "\n", "tokens[0].scopes"),
    (entry() + "  - name: runner\n    sha256: " + digest_of("other") + "\n    scopes: [health]\n",
     "name 'runner' is used by more than one entry"),
    (entry() + "  - name: other\n    sha256: " + GOOD + "\n    scopes: [health]\n",
     "two entries have the same sha256"),
    ("tokens: {name: runner}\n", "`tokens` must be a list"),
    ("tokens: []\nextra: 1\n", "expected one key, `tokens:`"),
    ("- name: runner\n", "expected one key, `tokens:`"),
])
def test_a_tokens_file_entry_that_breaks_a_rule_is_refused_naming_it(workspace, text, says):
    path = workspace.write("tokens.yaml", text)
    with pytest.raises(TokensFileError) as caught:
        tokens.load(path)
    assert says in str(caught.value)
    assert "llmc_pasted" not in str(caught.value)


def test_the_second_entry_is_checked_too(workspace):
    path = workspace.write("tokens.yaml", entry() + "  - name: other\n    sha256: nope\n"
                                                    "    scopes: [health]\n")
    with pytest.raises(TokensFileError) as caught:
        tokens.load(path)
    assert "tokens[1].sha256" in str(caught.value)
    assert "tokens[0]" not in str(caught.value)


def test_every_problem_of_a_tokens_file_is_named_one_after_another(workspace):
    path = workspace.write("tokens.yaml", "tokens:\n  - name: -x\n    sha256: nope\n"
                                          "    scopes: [resolve]\n")
    with pytest.raises(TokensFileError) as caught:
        tokens.load(path)
    assert f"tokens file {path}: tokens[0].name: must be 1–64" in str(caught.value)
    assert "'-'; tokens[0].sha256: must be the 64 hex characters" in str(caught.value)


@pytest.mark.parametrize("text", ["tokens:\n", "tokens: []\n"])
def test_a_tokens_file_listing_none_accepts_no_token_and_says_so(workspace, text):
    table = tokens.load(workspace.write("tokens.yaml", text))
    assert table.tokens == () and not table.broken
    assert table.problem is not None and "lists no tokens" in table.problem
    assert table.authenticate("llmc_good") is None


def test_a_good_tokens_file_gives_each_entry_its_name_digest_and_scopes(workspace):
    table = tokens.load(workspace.write(
        "tokens.yaml", entry(scopes="[resolve, secrets]") + "  - name: b.2_x\n    sha256: "
        + digest_of("llmc_other").upper() + "\n    scopes: [health]\n"))
    assert table.problem is None
    first, second = table.tokens
    assert (first.name, first.digest.hex(), first.scopes) == (
        "runner", GOOD, frozenset({"resolve", "secrets"}))
    assert (second.name, second.scopes) == ("b.2_x", frozenset({"health"}))
    assert table.authenticate("llmc_other") is second
    assert table.authenticate("llmc_good") is first
    assert table.authenticate("llmc_good") is first  # proven: the same answer


def test_a_tokens_file_over_the_limit_is_refused_and_one_at_the_limit_is_read(workspace):
    head = "tokens: []\n#"
    at_limit = head + "x" * (tokens.TOKENS_FILE_LIMIT - len(head) - 1) + "\n"
    assert tokens.load(workspace.write("at.yaml", at_limit)).tokens == ()
    with pytest.raises(TokensFileError) as caught:
        tokens.load(workspace.write("over.yaml", at_limit + "\n"))
    assert "more than the 1024 KiB allowed" in str(caught.value)


def test_only_a_valid_token_is_remembered_as_proven(workspace):
    table = tokens.load(workspace.write("tokens.yaml", entry()))
    for _ in range(3):
        assert table.authenticate("llmc_not-known") is None
    assert table._proven == {}  # a caller cannot fill it
    known = table.authenticate("llmc_good")
    assert table._proven == {"llmc_good": known}  # the next call skips the hash and the scan


# -- `token new`: scopes, the token and its entry ---------------------------------------------

def test_scopes_are_parsed_trimmed_and_deduplicated_in_order():
    assert tokens.parse_scopes(" secrets, resolve ,secrets,") == ("secrets", "resolve")
    assert tokens.parse_scopes("health") == ("health",)


@pytest.mark.parametrize(("text", "says"), [
    ("", "unknown scope (none given)"), (" , ", "unknown scope (none given)"),
    ("resolve,admin", "unknown scope 'admin'"), ("Resolve", "unknown scope 'Resolve'"),
])
def test_unknown_or_missing_scopes_are_refused_naming_them(text, says):
    with pytest.raises(ValueError) as caught:
        tokens.parse_scopes(text)
    assert str(caught.value).startswith(says)
    assert "use a comma-separated list of: resolve, secrets, health" in str(caught.value)


def test_a_new_token_is_prefixed_random_and_its_entry_loads(workspace):
    first, second = tokens.new_token(), tokens.new_token()
    assert first.startswith("llmc_") and first != second
    assert len(first) == len("llmc_") + 43  # 32 random bytes, URL-safe base64
    text = "tokens:\n" + tokens.entry_yaml("runner", first, ("resolve", "secrets"))
    assert text.endswith(f"    sha256: {digest_of(first)}\n    scopes: [resolve, secrets]\n")
    table = tokens.load(workspace.write("tokens.yaml", text))
    assert table.authenticate(first) == tokens.Token(
        "runner", bytes.fromhex(digest_of(first)), frozenset({"resolve", "secrets"}))


def test_a_tokens_file_that_cannot_be_used_makes_a_closed_broken_table():
    table = tokens.closed("/etc/tokens.yaml", "why")
    assert (table.tokens, table.source, table.problem, table.broken) == (
        (), "/etc/tokens.yaml", "why", True)


# -- redaction: what has credentials, and what is left alone ----------------------------------

@pytest.mark.parametrize(("url", "has"), [
    ("https://user:pw@proxy.example/", True), ("https://proxy.example/a@b", False),
    ("https://proxy.example/", False), ("http://[::1", False),
])
def test_has_credentials_looks_only_at_the_authority(url, has):
    assert has_credentials(url) is has


@pytest.mark.parametrize("text", ["no credentials here", "mail me at someone@example.com",
                                  "https://proxy.example/path@x"])
def test_text_without_userinfo_is_left_as_it_is(text):
    assert redact_text(text) == text
    assert redact_url(text) == text


def test_an_unparseable_url_with_credentials_is_still_redacted():
    assert redact_url("http://user:pw@[::1") == "http://***@[::1"


# -- access: who is on this machine, the bearer header, the exposure policy -------------------

@pytest.mark.parametrize(("peer", "loopback"), [
    ("ipv4:127.0.0.1:5555", True), ("ipv4:127.9.9.9:1", True), ("ipv6:[::1]:5555", True),
    ("ipv6:%5B::1%5D:5555", True), ("ipv6:[::ffff:127.0.0.1]:80", True),
    ("ipv4:10.0.0.1:5555", False), ("ipv6:[2001:db8::1]:5555", False),
    ("ipv6:[::ffff:10.0.0.1]:80", False), ("unix:/run/llmconfig.sock", False),
    ("ipv4:localhost:5555", False), ("ipv4:", False), ("127.0.0.1:5555", False),
    ("unix-abstract:127.0.0.1:5555", False), ("vsock:[::1]:5555", False),
])
def test_a_peer_is_loopback_only_by_its_address(peer, loopback):
    assert access.peer_is_loopback(peer) is loopback


@pytest.mark.parametrize("header", [f"bearer {RESOLVER}", f"BEARER {RESOLVER}",
                                    f"  Bearer {RESOLVER}  ", f"Bearer   {RESOLVER}"])
def test_the_bearer_scheme_is_case_blind_and_the_token_trimmed(guarded, header):
    target = guarded(RESOLVER).target
    with grpc.insecure_channel(target) as channel:
        answer = pb_grpc.LLMConfigServiceStub(channel).ResolveLLMConfig(
            pb.ResolveLLMConfigRequest(), timeout=5, metadata=(("authorization", header),))
    assert answer.config.provider == "anthropic"


@pytest.mark.parametrize("header", ["Bearer", "Bearer    ", RESOLVER, f"Token {RESOLVER}"])
def test_an_authorization_without_a_bearer_token_is_a_missing_token(guarded, header):
    target = guarded(RESOLVER).target
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as caught:
        pb_grpc.LLMConfigServiceStub(channel).ResolveLLMConfig(
            pb.ResolveLLMConfigRequest(), timeout=5, metadata=(("authorization", header),))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "requires a token" in caught.value.details()


def test_the_secrets_scope_is_named_with_what_asked_for_it():
    caller = access.Caller("runner", frozenset({"resolve"}))
    with pytest.raises(access.Denied) as caught:
        access.require_secrets(caller=caller)
    assert caught.value.status.code is grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.status.details == (
        "token 'runner' lacks the 'secrets' scope needed for include_secrets (it has: resolve); "
        "ask the operator to add 'secrets' to its scopes in the tokens file")
    assert access.require_secrets(caller=access.TRUSTED) is access.TRUSTED


def listener(spec: str) -> Listener:
    return parse_listener(spec)


@pytest.mark.parametrize("specs", [["127.0.0.1:0"], ["[::1]:0", "localhost:0"],
                                   ["unix:/run/x.sock"]])
def test_this_machines_listeners_need_neither_tokens_nor_tls(specs):
    assert access.exposure_problems([listener(s) for s in specs], False, None) == []


def test_a_listener_beyond_loopback_needs_tokens_then_tls():
    listeners = [listener("127.0.0.1:0"), listener("0.0.0.0:50051"), listener("10.1.2.3:9")]
    tls = access.TlsFiles("cert.pem", "key.pem")
    no_tokens, = access.exposure_problems(listeners, False, tls)
    assert no_tokens.startswith("--listen 0.0.0.0:50051, 10.1.2.3:9 is reachable from other "
                                "machines and there is no --tokens-file")
    no_tls, = access.exposure_problems(listeners, True, None)
    assert no_tls.startswith("--listen 0.0.0.0:50051, 10.1.2.3:9 is reachable from other "
                             "machines without TLS")
    assert access.exposure_problems(listeners, True, tls) == []


def test_the_access_description_says_who_is_trusted_and_where_keys_go(workspace):
    local = [listener("127.0.0.1:0")]
    assert access.load(access.AccessOptions(), local).description == (
        "no tokens: every caller is trusted, keys only over Unix sockets; "
        "TCP transport security: none")
    assert access.load(access.AccessOptions(trust_loopback=True), local).description == (
        "no tokens: every caller is trusted, keys also over loopback TCP (--trust-loopback); "
        "TCP transport security: none")
    path = workspace.write("tokens.yaml", tokens_yaml())
    loaded = access.load(access.AccessOptions(tokens_file=str(path)), local)
    assert loaded.description == f"tokens from {path} (3 entries); TCP transport security: none"
    assert loaded.warnings == ()


def test_insecure_serves_beyond_loopback_with_one_warning_per_problem():
    loaded = access.load(access.AccessOptions(insecure=True), [listener("0.0.0.0:0")])
    assert loaded.tokens is None
    assert loaded.warnings == ("--insecure: serving anyway although --listen 0.0.0.0:0 is "
                               "reachable from other machines and there is no --tokens-file, "
                               "so anyone who can reach it could read the API keys",)
    with pytest.raises(access.AccessProblem) as caught:
        access.load(access.AccessOptions(), [listener("0.0.0.0:0")])
    assert caught.value.tokens is None


def test_an_unusable_tokens_file_is_loaded_as_a_closed_table(workspace):
    path = workspace.write("tokens.yaml", "tokens: [oops]\n")
    loaded = access.load(access.AccessOptions(tokens_file=str(path)), [listener("127.0.0.1:0")])
    assert loaded.tokens is not None and loaded.tokens.broken and loaded.tokens.tokens == ()
    assert loaded.tokens.problem is not None
    assert loaded.tokens.problem.endswith("; every token is refused until it is fixed")


def test_a_token_table_never_shows_or_compares_the_tokens_it_has_proven(workspace):
    path = workspace.write("tokens.yaml", entry())
    used, fresh = tokens.load(path), tokens.load(path)
    assert used.authenticate("llmc_good") is not None
    assert "llmc_good" not in repr(used)  # the fingerprint of a state is made of this repr
    assert repr(used) == repr(fresh) and used == fresh  # a reload finds nothing changed


def test_tokens_and_token_tables_cannot_be_changed_once_read(workspace):
    import dataclasses
    table = tokens.load(workspace.write("tokens.yaml", entry()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.tokens[0].scopes = frozenset(tokens.SCOPES)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.problem = None  # type: ignore[misc]


def test_a_caller_shows_no_token_and_cannot_be_changed(workspace):
    import dataclasses
    table = tokens.load(workspace.write("tokens.yaml", tokens_yaml()))
    caller = access.AccessGuard(lambda: table)._authorize(
        "ResolveLLMConfig", [("authorization", f"Bearer {EVERYTHING}")])
    assert EVERYTHING not in repr(caller) and EVERYTHING not in str(caller)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caller.scopes = frozenset()  # type: ignore[misc]
    assert access.authorize_again(caller).name == "admin"  # asks the table again
    assert access.authorize_again(access.TRUSTED) is access.TRUSTED  # nothing to ask


def test_a_tls_file_over_the_limit_is_refused_naming_the_limit(workspace):
    big = workspace.write("cert.pem", "-----BEGIN CERTIFICATE-----\n"
                          + "A" * access.TLS_FILE_LIMIT)
    key = workspace.write("key.pem", "-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(access.TlsError) as caught:
        access.read_tls(access.TlsFiles(str(big), str(key)))
    assert str(caught.value) == (f"--tls-cert: {big} is {access.TLS_FILE_LIMIT + 28} bytes, "
                                 "more than the 1024 KiB allowed")


@pytest.mark.parametrize(("scopes", "held"), [({"resolve", "health"}, "health, resolve"),
                                               (set(), "none")])
def test_a_missing_scope_names_the_scopes_the_token_has(scopes, held):
    with pytest.raises(access.Denied) as caught:
        access.require_secrets(caller=access.Caller("daemon", frozenset(scopes)))
    assert f"(it has: {held});" in caught.value.status.details



# -- TLS files: each way one cannot be used is said ------------------------------------------

@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return pki.make(tmp_path_factory.mktemp("pki"))


def tls_problem(cert, key, client_ca=None) -> str:
    with pytest.raises(access.TlsError) as caught:
        access.read_tls(access.TlsFiles(str(cert), str(key), client_ca and str(client_ca)))
    return str(caught.value)


def test_good_tls_files_are_read_and_described(certificates):
    files = access.TlsFiles(str(certificates.server_cert), str(certificates.server_key))
    material = access.read_tls(files)
    assert material.cert == certificates.server_cert.read_bytes()
    assert material.key == certificates.server_key.read_bytes() and material.client_ca is None
    local = [listener("127.0.0.1:0")]
    assert access.load(access.AccessOptions(tls=files), local).description.endswith(
        "; TCP transport security: TLS")
    mutual = access.TlsFiles(files.cert, files.key, str(certificates.ca))
    assert access.load(access.AccessOptions(tls=mutual), local).description.endswith(
        "; TCP transport security: mTLS (client certificates required)")


def test_a_key_where_the_certificate_belongs_is_no_certificate(certificates):
    cert, key = certificates.server_cert, certificates.server_key
    assert tls_problem(key, key) == f"--tls-cert: {key} holds no PEM certificate"
    assert tls_problem(cert, cert) == f"--tls-key: {cert} holds no PEM private key"


def test_a_certificate_that_does_not_parse_is_refused(certificates, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    assert tls_problem(junk, certificates.server_key) == (
        f"--tls-cert: {junk} holds no readable PEM certificate")
    assert tls_problem(certificates.server_cert, certificates.server_key, junk) == (
        f"--tls-client-ca: {junk} holds no readable PEM certificate")


def test_an_encrypted_key_is_refused_saying_so(certificates, tmp_path):
    key = tmp_path / "encrypted.key"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                   "-----END ENCRYPTED PRIVATE KEY-----\n")
    assert tls_problem(certificates.server_cert, key) == (
        f"--tls-key: {key} is encrypted; gRPC needs an unencrypted PEM key")


def test_the_key_of_another_certificate_is_a_mismatch(certificates):
    cert, key = certificates.server_cert, certificates.client_key
    assert tls_problem(cert, key) == (
        f"--tls-key: {key} is not the key of the certificate in {cert} (KEY_VALUES_MISMATCH)")


# -- state: what a build refuses, and the revision key ----------------------------------------

def test_a_mode_that_cannot_be_known_stops_a_build_even_when_the_mode_need_not_be_valid(
        workspace):
    from llmconfig_server.live import state
    from llmconfig_server.sources.layers import MODE_ENV

    from conftest import inputs_for
    with pytest.raises(state.BuildError) as caught:
        state.build(inputs_for(workspace, {MODE_ENV: "bogus"}))
    assert any(MODE_ENV in problem for problem in caught.value.problems)


def test_a_tokens_file_listing_none_keeps_the_processs_own_revision_key(workspace):
    from llmconfig_server.live.state import derive_revision_key
    from llmconfig_server.sources.resolver import PROCESS_REVISION_KEY

    empty = tokens.load(workspace.write("empty.yaml", "tokens: []\n"))
    assert derive_revision_key(None) == derive_revision_key(empty) == PROCESS_REVISION_KEY
    one = tokens.load(workspace.write("one.yaml", entry()))
    assert derive_revision_key(one) not in (PROCESS_REVISION_KEY, derive_revision_key(
        tokens.load(workspace.write("other.yaml", entry(sha256=digest_of("llmc_other"))))))


# -- network: the caller's network and container addresses ------------------------------------

@pytest.mark.parametrize(("raw", "network"), [("", "host"), ("host", "host"),
                                              ("docker", "docker")])
def test_the_network_names_are_host_by_default_and_docker(raw, network):
    from llmconfig_server.resolve.network import parse_network
    assert parse_network(raw) == network


@pytest.mark.parametrize("raw", ["Docker", "bridge", " host"])
def test_any_other_network_is_the_callers_mistake(raw):
    from llmconfig_server.resolve.domain import ConfigError
    from llmconfig_server.resolve.network import parse_network
    with pytest.raises(ConfigError):
        parse_network(raw)


@pytest.mark.parametrize(("hostport", "seen"), [
    ("[::1]:7233", "host.docker.internal:7233"), ("127.0.0.1:6379", "host.docker.internal:6379"),
    ("localhost", "host.docker.internal"), ("redis.internal:6379", None),
])
def test_a_loopback_host_port_is_seen_through_the_container_host(hostport, seen):
    from llmconfig_server.resolve.network import DEFAULT_CONTAINER_HOST, hostport_for_container
    assert DEFAULT_CONTAINER_HOST == "host.docker.internal"
    assert hostport_for_container(hostport, DEFAULT_CONTAINER_HOST) == seen


def test_a_docker_caller_is_told_the_container_host_for_a_loopback_base_url(serve):
    client = serve(env={"OLLAMA_BASE_URL": "http://127.0.0.1:11434"})
    assert client.resolve(network="docker").config.base_url == \
        "http://host.docker.internal:11434"
    assert client.resolve(network="host").config.base_url == "http://127.0.0.1:11434"


def test_an_ollama_host_without_a_host_means_this_machine():
    from llmconfig_server.resolve.domain import Source
    from llmconfig_server.resolve.parsing import parse_ollama_host
    assert parse_ollama_host(":11434", Source.ENV, "OLLAMA_HOST") == (
        "http://127.0.0.1:11434", ())
