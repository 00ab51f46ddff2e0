"""Bad input at the command line (issue 7, item 1), table-driven: every option
of run, check, repro and list given unknown names, 0, negative, non-numeric
and huge values, missing or unwritable paths, malformed plugins and malformed
repro files. Each must end the same way: exactly one line on stderr, nothing
on stdout, exit code 2, no crash, no core file, nothing left behind.

Run by ctest (robust.cli_bad_input) with RINGSIDE_BIN set to the binary.
"""
import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

BIN = os.environ.get("RINGSIDE_BIN", "")
pytestmark = pytest.mark.skipif(not BIN or not os.access(BIN, os.X_OK), reason="RINGSIDE_BIN not set")


@pytest.fixture(scope="module")
def paths():
    """Files the cases refer to, in a scratch directory of our own."""
    d = tempfile.mkdtemp(prefix="ringside-badinput-")
    p = {"d": d}
    p["text"] = os.path.join(d, "plugin.txt")
    with open(p["text"], "w") as f:
        f.write("not a shared object\n")
    # An ELF shared object of the wrong interface: libc has no ringside_plugin_entry.
    p["libc"] = next(x for x in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                 "/lib64/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6") if os.path.exists(x))
    # The same ELF claiming another machine (e_machine at offset 18).
    p["wrongarch"] = os.path.join(d, "wrongarch.so")
    with open(p["libc"], "rb") as f:
        elf = bytearray(f.read())
    elf[18:20] = (0x1234).to_bytes(2, "little")
    with open(p["wrongarch"], "wb") as f:
        f.write(elf)
    # A truncated ELF: the header only.
    p["truncelf"] = os.path.join(d, "trunc.so")
    with open(p["truncelf"], "wb") as f:
        f.write(bytes(elf[:40]))
    # An executable (ET_EXEC or PIE), not a plugin.
    p["exe"] = shutil.which("true") or "/bin/true"
    good = {"ringside_repro": 1, "backend": "epoll", "scenario": "tcp.rr", "seed": 1,
            "args": {"duration": "0.1"}, "detectors": "none", "verdict": "clean", "violations": []}
    def repro(name, doc=None, text=None):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text if text is not None else json.dumps(doc))
        p[name] = path
    text = json.dumps(good)
    repro("truncated.json", text=text[: len(text) // 2])
    repro("empty.json", text="")
    repro("binary.json", text="\x00\x01\x02\n\x1b[2J")
    repro("array.json", doc=[1, 2])
    repro("noversion.json", doc={k: v for k, v in good.items() if k != "ringside_repro"})
    repro("version2.json", doc={**good, "ringside_repro": 2})
    repro("seedstring.json", doc={**good, "seed": "1"})
    repro("seedneg.json", doc={**good, "seed": -1})
    repro("backendnum.json", doc={**good, "backend": 7})
    repro("nobackend.json", doc={k: v for k, v in good.items() if k != "backend"})
    repro("argsarray.json", doc={**good, "args": ["bs", "4k"]})
    repro("argnum.json", doc={**good, "args": {"bs": 4096}})
    repro("argunknown.json", doc={**good, "args": {"frobnicate": "1"}})
    repro("argbad.json", doc={**good, "args": {"bs": "-4k"}})
    repro("unknownfield.json", doc={**good, "frobnicate": True})
    repro("unknownbackend.json", doc={**good, "backend": "nosuch"})
    repro("unknownscenario.json", doc={**good, "scenario": "nosuch"})
    repro("detectorsnum.json", doc={**good, "detectors": 3})
    repro("detectorsbad.json", doc={**good, "detectors": "psychic"})
    repro("timeoutnum.json", doc={**good, "timeout": 5})
    repro("pluginsstr.json", doc={**good, "plugins": "/x.so"})
    repro("pluginmissing.json", doc={**good, "plugins": ["/nonexistent/x.so"]})
    repro("violationsbad.json", doc={**good, "violations": [{"detail": "no kind"}]})
    p["expected_bad"] = os.path.join(d, "expected.tsv")
    with open(p["expected_bad"], "w") as f:
        f.write("cancel.storm epoll clean,extra words here\n")
    # A directory nobody may write to: mode 0500, or /sys for root (who
    # ignores modes; sysfs refuses new files with EACCES).
    p["ro"] = os.path.join(d, "readonly")
    os.mkdir(p["ro"])
    os.chmod(p["ro"], stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:
        p["ro"] = "/sys"
    p["afile"] = p["text"]
    yield p
    os.chmod(os.path.join(d, "readonly"), 0o755)
    shutil.rmtree(d, ignore_errors=True)


R = ["run", "--backend", "epoll", "--scenario", "tcp.rr", "--duration", "0.1"]
RF = ["run", "--backend", "epoll", "--scenario", "file.seq_read", "--duration", "0.1"]
C = ["check", "--backend", "epoll", "--scenario", "cancel.storm"]
P = ["repro", "--backend", "epoll", "--scenario", "tcp.rr", "--duration", "0.1"]

# (id, argv after the binary; "{name}" is replaced by paths[name], env additions, prefix command)
CASES = [
    # ---- the command line itself ----
    ("no-subcommand", [], {}),
    ("unknown-subcommand", ["frobnicate"], {}),
    ("unknown-option", ["run", "--frobnicate", "1"], {}),
    ("option-without-value", ["run", "--bs"], {}),
    ("extra-positional", ["run", "extra"], {}),
    # ---- list ----
    ("list-unknown-what", ["list", "gadgets"], {}),
    ("list-plugin-missing", ["list", "--plugin", "/nonexistent/x.so"], {}),
    ("list-plugin-text", ["list", "--plugin", "{text}"], {}),
    # ---- run: names ----
    ("run-backend-unknown", ["run", "--backend", "nosuch"], {}),
    ("run-backend-empty-item", ["run", "--backend", "epoll,,blocking"], {}),
    ("run-backend-newline", ["run", "--backend", "ep\noll"], {}),
    ("run-scenario-unknown", ["run", "--scenario", "nosuch"], {}),
    ("run-scenario-empty-item", ["run", "--scenario", "tcp.rr,"], {}),
    # ---- run: numbers ----
    *[(f"run-bs-{n}", R + ["--bs", v], {}) for n, v in
      [("zero", "0"), ("neg", "-4k"), ("text", "big"), ("suffix", "4q"), ("overflow", "99999999999999999999999"),
       ("toolarge", "2g"), ("float", "1.5k")]],
    *[(f"run-qd-{n}", R + ["--qd", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("beyond-ring", "5000"), ("overflow", "99999999999999999999")]],
    *[(f"run-conns-{n}", R + ["--conns", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("huge", "100001")]],
    ("run-conns-beyond-nofile", ["run", "--backend", "epoll", "--scenario", "tcp.echo", "--conns", "500"], {},
     ["prlimit", "--nofile=256:256"]),
    *[(f"run-size-{n}", RF + ["--size", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1m"), ("text", "lots"), ("toolarge", "2048g"), ("overflow", "99999999999999999g")]],
    ("run-size-beyond-disk", RF + ["--size", "1000g", "--dir", "{d}"], {}),
    ("run-bs-beyond-memory", ["run", "--backend", "epoll", "--scenario", "file.rand_read", "--bs", "1g",
                              "--qd", "4096", "--size", "1g"], {}),
    *[(f"run-duration-{n}", R[:-2] + ["--duration", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "soon"), ("huge", "1e9"), ("nan", "nan"), ("inf", "inf")]],
    *[(f"run-ops-{n}", R[:-2] + ["--ops", v], {}) for n, v in
      [("zero", "0"), ("neg", "-5"), ("text", "many"), ("huge", "99999999999999999999")]],
    ("run-ops-and-duration", R + ["--ops", "10"], {}),
    *[(f"run-rate-{n}", R + ["--rate", v], {}) for n, v in [("neg", "-1"), ("text", "fast"), ("nan", "nan")]],
    *[(f"run-seed-{n}", R + ["--seed", v], {}) for n, v in
      [("neg", "-1"), ("text", "x"), ("overflow", "99999999999999999999999")]],
    ("run-verify-unknown", R + ["--verify", "some"], {}),
    *[(f"run-timeout-{n}", R + ["--timeout", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("below-duration", "0.05"), ("huge", "1e12")]],
    ("run-detectors-unknown", R + ["--detectors", "psychic"], {}),
    ("run-detectors-empty-item", R + ["--detectors", "canary,"], {}),
    *[(f"run-repetitions-{n}", R + ["--repetitions", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("huge", "1001")]],
    ("run-isolate-unknown", R + ["--isolate", "some"], {}),
    # ---- run: paths ----
    ("run-out-missing-dir", R + ["--out", "/nonexistent/dir/r.json"], {}),
    ("run-out-unwritable", R + ["--out", "{ro}/r.json"], {}),
    ("run-out-empty", R + ["--out", ""], {}),
    ("run-out-is-dir", R + ["--out", "{d}"], {}),
    ("run-dir-missing", RF + ["--dir", "/nonexistent/dir"], {}),
    ("run-dir-is-file", RF + ["--dir", "{afile}"], {}),
    ("run-dir-unwritable", RF + ["--dir", "{ro}"], {}),
    ("run-file-missing-dir", RF + ["--file", "/nonexistent/dir/data"], {}),
    ("run-file-unwritable", RF + ["--file", "{ro}/data"], {}),
    ("run-file-and-dir", RF + ["--file", "{d}/data", "--dir", "{d}"], {}),
    ("run-repro-dir-unwritable", R + ["--repro-dir", "{ro}/repros"], {}),
    ("run-repro-dir-is-file", R + ["--repro-dir", "{afile}"], {}),
    ("run-tmpdir-missing", RF, {"TMPDIR": "/nonexistent/tmp"}),
    ("run-tmpdir-missing-isolated-row", R, {"TMPDIR": "/nonexistent/tmp"}),
    ("check-tmpdir-missing", C, {"TMPDIR": "/nonexistent/tmp"}),
    ("run-plugin-missing", R + ["--plugin", "/nonexistent/x.so"], {}),
    ("run-plugin-text", R + ["--plugin", "{text}"], {}),
    ("run-plugin-wrong-interface", R + ["--plugin", "{libc}"], {}),
    ("run-plugin-wrong-arch", R + ["--plugin", "{wrongarch}"], {}),
    ("run-plugin-truncated-elf", R + ["--plugin", "{truncelf}"], {}),
    ("run-plugin-executable", R + ["--plugin", "{exe}"], {}),
    ("run-plugin-dir", R + ["--plugin", "{d}"], {}),
    ("run-fault-switch-malformed", R, {"RINGSIDE_SCENARIO_FAULT": "explode"}),
    # ---- check ----
    ("check-backend-unknown", ["check", "--backend", "nosuch"], {}),
    ("check-scenario-unknown", ["check", "--scenario", "nosuch"], {}),
    *[(f"check-iterations-{n}", C + ["--iterations", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("huge", "99999999999999999999")]],
    *[(f"check-seed-{n}", C + ["--seed", v], {}) for n, v in [("neg", "-1"), ("text", "x")]],
    *[(f"check-timeout-{n}", C + ["--timeout", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("huge", "1e9")]],
    *[(f"check-jobs-{n}", C + ["--jobs", v], {}) for n, v in
      [("zero", "0"), ("neg", "-1"), ("text", "x"), ("huge", "100000")]],
    ("check-expected-missing", C + ["--expected", "/nonexistent/expected.tsv"], {}),
    ("check-expected-malformed", C + ["--expected", "{expected_bad}"], {}),
    ("check-out-unwritable", C + ["--out", "{ro}/r.json"], {}),
    ("check-repro-dir-unwritable", C + ["--repro-dir", "{ro}/repros"], {}),
    ("check-plugin-text", C + ["--plugin", "{text}"], {}),
    ("check-plugin-wrong-interface", C + ["--plugin", "{libc}"], {}),
    # ---- repro: flags ----
    ("repro-nothing", ["repro"], {}),
    ("repro-backend-only", ["repro", "--backend", "epoll"], {}),
    ("repro-backend-unknown", ["repro", "--backend", "nosuch", "--scenario", "tcp.rr"], {}),
    ("repro-scenario-glob", ["repro", "--backend", "epoll", "--scenario", "tcp.*"], {}),
    ("repro-bs-zero", P + ["--bs", "0"], {}),
    ("repro-seed-text", P + ["--seed", "x"], {}),
    ("repro-timeout-below-duration", P + ["--timeout", "0.01"], {}),
    ("repro-detectors-unknown", P + ["--detectors", "psychic"], {}),
    ("repro-file-and-flags", ["repro", "{truncated.json}", "--backend", "epoll"], {}),
    ("repro-json-out-unwritable", P + ["--json-out", "{ro}/x.json"], {}),
    ("repro-plugin-wrong-arch", P + ["--plugin", "{wrongarch}"], {}),
    # ---- repro: files ----
    ("repro-file-missing", ["repro", "/nonexistent/repro.json"], {}),
    ("repro-file-dir", ["repro", "{d}"], {}),
    *[(f"repro-file-{n.removesuffix('.json')}", ["repro", "{" + n + "}"], {}) for n in
      ["truncated.json", "empty.json", "binary.json", "array.json", "noversion.json", "version2.json",
       "seedstring.json", "seedneg.json", "backendnum.json", "nobackend.json", "argsarray.json", "argnum.json",
       "argunknown.json", "argbad.json", "unknownfield.json", "unknownbackend.json", "unknownscenario.json",
       "detectorsnum.json", "detectorsbad.json", "timeoutnum.json", "pluginsstr.json", "pluginmissing.json",
       "violationsbad.json"]],
]


def _case_id(c):
    return c[0]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_bad_input_is_one_line_on_stderr_and_exit_2(case, paths, tmp_path):
    name, argv, env_add = case[0], case[1], case[2]
    prefix = case[3] if len(case) > 3 else []
    args = []
    for a in argv:
        for k, v in paths.items():
            a = a.replace("{" + k + "}", v)
        args.append(a)
    env = dict(os.environ)
    env.update(env_add)
    env["TMPDIR"] = env_add.get("TMPDIR", str(tmp_path))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run(prefix + [BIN] + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120, preexec_fn=lambda: __import__("resource").setrlimit(
                           __import__("resource").RLIMIT_CORE, (0, 0)))
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {out}\nstderr: {err}"
    assert out == "", f"stdout not empty: {out!r}"
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line on stderr: {err!r}"
    assert err.startswith("ringside: "), err
    assert all(0x20 <= ord(ch) < 0x7f for ch in err[:-1]), f"unprintable byte in {err!r}"
    # Nothing left behind: no core, no results file, no repro dir, no temp files.
    assert sorted(os.listdir(cwd)) == [], os.listdir(cwd)
    assert [x for x in os.listdir(tmp_path) if x != "cwd"] == []
