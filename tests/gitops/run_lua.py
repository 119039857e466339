"""Runs the Argo CD health and action scripts of gitops/argocd/ with Lua 5.1 (the Lua
version of Argo CD's interpreter, gopher-lua) against the cases beside this file.
Usage: python run_lua.py REPO_ROOT. Prints one line per case; exits 1 if any failed."""
import datetime
import pathlib
import re
import sys

import lupa.lua51 as lua51
import yaml

root = pathlib.Path(sys.argv[1])
here = pathlib.Path(__file__).parent
scripts = root / "gitops" / "argocd" / "sendconnector.io"
kinds = ["SendConnector", "MailboxBinding"]


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def to_py(value):
    if lua51.lua_type(value) == "table":
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys):
            return [to_py(value[k]) for k in sorted(keys)]
        return {k: to_py(v) for k, v in value.items()}
    return value


def run(script, obj):
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    return to_py(lua.execute(script.read_text()))


passed = failed = 0


def check(label, ok, detail):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {label}")
    else:
        failed += 1
        print(f"FAIL  {label}: {detail}")


for kind in kinds:
    for case in yaml.safe_load((here / "health-cases.yaml").read_text()):
        obj = dict(case["object"], apiVersion="sendconnector.io/v1alpha1", kind=kind)
        hs = run(scripts / kind / "health.lua", obj)
        ok = hs.get("status") == case["expect"] and bool(hs.get("message"))
        if ok and "message" in case:
            ok = hs.get("message") == case["message"]
        check(f"{kind} health: {case['name']}", ok, f"got {hs}, want {case['expect']} {case.get('message', '')}")

    for case in yaml.safe_load((here / "action-cases.yaml").read_text()):
        obj = dict(case["object"], apiVersion="sendconnector.io/v1alpha1", kind=kind)
        if "discovery" in case:
            actions = run(scripts / kind / "actions" / "discovery.lua", obj)
            got = {name: not a.get("disabled", False) for name, a in actions.items()}
            check(f"{kind} discovery: {case['name']}", got == case["discovery"], f"got {got}")
            continue
        # Lua's time() reads a coarse clock that may lag a little: allow two seconds.
        before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
        out = run(scripts / kind / "actions" / case["action"] / "action.lua", obj)
        annotations = (out.get("metadata") or {}).get("annotations") or {}
        problems = []
        for key, want in case["annotations"].items():
            got = annotations.get(key)
            if want == "NOW":
                stamp = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got or "")
                fresh = stamp and datetime.datetime.strptime(got, "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.timezone.utc) >= before
                if not fresh:
                    problems.append(f"{key}={got!r} is not a fresh RFC 3339 UTC time")
            elif got != want:
                problems.append(f"{key}={got!r}, want {want!r}")
        if out.get("metadata", {}).get("name") != obj["metadata"]["name"]:
            problems.append("the object lost its name")
        check(f"{kind} action {case['action']}: {case['name']}", not problems, "; ".join(problems))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
