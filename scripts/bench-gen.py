#!/usr/bin/env python3
"""Seeded trees for the push benchmarks.

real: dashboards from dev-data/9-dashboard.json (16 of them, 1 KB to 260 KB pretty-printed),
      picked with weights so the mean is ~22 KB; names made unique, display names, queries and
      some numbers varied; 20 projects (team-00..team-19, one folder each) defined in
      projects.json at the root, so the tree passes `perses-oci lint`.
pess: random bytes, base64 (10,000 characters + newline per file), in 20 folders.
yaml: the dashboards of `real` (the same seed gives the same dashboards), written as YAML in
      block style, two spaces, strings quoted only where a plain scalar would mean something
      else to yaml.v3 (as percli and the Go SDK's YAML output look); projects.yaml at the root.
change: rewrites some dashboards of a tree as another variant (new inode, so a hard-linked copy
      of the tree is left untouched); the format follows the file's extension.

usage: bench-gen.py real|yaml SRC OUT N SEED | pess OUT N SEED | change SRC DIR SEED I...
"""
import base64, json, os, random, re, sys
from multiprocessing import Pool

TEMPLATES = None
TEAMS = 20
SUFFIXES = ["prod", "staging", "eu", "us", "canary", "v2"]


def load(src):
    global TEMPLATES
    TEMPLATES = [json.dumps(d) for d in json.load(open(src))]


def mutate(v, rng, key=None, parent=None):
    """Varies what users vary between dashboards: display names, descriptions, queries and
    numbers (thresholds, sizes, positions); identifiers (variable, label, plugin names) stay."""
    if isinstance(v, dict):
        return {k: mutate(x, rng, k, key) for k, x in v.items()}
    if isinstance(v, list):
        return [mutate(x, rng, key, parent) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float)):
        if rng.random() < 0.7:
            return v
        if isinstance(v, float):
            return round(v * rng.uniform(0.5, 1.5), 2)
        return int(v * rng.uniform(0.5, 1.5)) + rng.randint(0, 9)
    if not isinstance(v, str):
        return v
    if key in ("query", "expr"):
        v = v.replace("$job", "svc-%d" % rng.randint(0, 999))
        return v + (" > %d" % rng.randint(0, 100) if rng.random() < 0.3 else "")
    if (key == "name" and parent == "display") or key == "description":
        return "%s %s" % (v, rng.choice(SUFFIXES + ["%04d" % rng.randint(0, 9999)]))
    return v


def dashboard(seed, i, variant=0):
    # The template depends on the file only, the variations on the variant too: a variant is
    # the same dashboard (same name), changed.
    pick = random.Random("%d/%d" % (seed, i))
    weights = [60 if n == 14 else 100 if n < 2 else 60 for n in range(len(TEMPLATES))]
    d = json.loads(TEMPLATES[pick.choices(range(len(TEMPLATES)), weights=weights)[0]])
    rng = random.Random("%d/%d/%d" % (seed, i, variant))
    base = d["metadata"]["name"]
    d = mutate(d, rng)
    team = "team-%02d" % (i % TEAMS)
    d["metadata"] = {"name": "%s-%06d" % (base, i), "project": team,
                     "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
                     "version": variant}
    return team, d["metadata"]["name"], json.dumps(d, indent=2) + "\n"


# Plain scalars yaml.v3 would read as something else than the string (null, bool, number,
# timestamp), or that YAML cannot hold plain: those are written double-quoted (JSON escapes are
# YAML double-quoted escapes).
PLAIN_OTHER = re.compile(r"^(~|null|Null|NULL|true|True|TRUE|false|False|FALSE|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
                         r"|[-+]?(0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|[0-9_]+)"
                         r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                         r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$")


def yaml_str(v):
    if (v == "" or v != v.strip() or PLAIN_OTHER.match(v) or v[0] in "-?:,[]{}#&*!|>'\"%@`"
            or ": " in v or " #" in v or v.endswith(":") or any(c in v for c in "\n\t\r") or
            not v.isprintable()):
        return json.dumps(v, ensure_ascii=False)
    return v


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return yaml_str(v)


def yaml_lines(v, pad):
    """Lines of a mapping or list at indentation `pad` (block style)."""
    out = []
    sp = " " * pad
    if isinstance(v, dict):
        for k, x in v.items():
            key = yaml_str(str(k))
            if isinstance(x, (dict, list)) and x:
                out.append(sp + key + ":")
                out.extend(yaml_lines(x, pad + 2))
            elif isinstance(x, (dict, list)):
                out.append(sp + key + (": {}" if isinstance(x, dict) else ": []"))
            else:
                out.append(sp + key + ": " + yaml_scalar(x))
    else:
        for x in v:
            if isinstance(x, (dict, list)) and x:
                inner = yaml_lines(x, pad + 2)
                out.append(sp + "- " + inner[0][pad + 2:])
                out.extend(inner[1:])
            elif isinstance(x, (dict, list)):
                out.append(sp + ("- {}" if isinstance(x, dict) else "- []"))
            else:
                out.append(sp + "- " + yaml_scalar(x))
    return out


def to_yaml(v):
    return "\n".join(yaml_lines(v, 0)) + "\n"


def write_real(args):
    out, seed, lo, hi = args[:4]
    yaml = len(args) > 4 and args[4]
    n = 0
    for i in range(lo, hi):
        team, name, text = dashboard(seed, i)
        if yaml:
            text = to_yaml(json.loads(text))
        with open(os.path.join(out, team, name + (".yaml" if yaml else ".json")), "w") as f:
            f.write(text)
        n += len(text)
    return n


def write_pess(args):
    out, seed, lo, hi = args
    for i in range(lo, hi):
        rng = random.Random("%d/%d" % (seed, i))
        with open(os.path.join(out, "part-%02d" % (i % 20), "blob-%06d.txt" % i), "wb") as f:
            f.write(base64.b64encode(rng.randbytes(7500)) + b"\n")
    return 0


def chunks(n, step=1000):
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def main():
    cmd = sys.argv[1]
    if cmd in ("real", "yaml"):  # real|yaml SRC OUT N SEED
        src, out, n, seed = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        yaml = cmd == "yaml"
        load(src)
        for t in range(TEAMS):
            os.makedirs(os.path.join(out, "team-%02d" % t), exist_ok=True)
        projects = [{"kind": "Project", "metadata": {"name": "team-%02d" % t},
                     "spec": {"display": {"name": "Team %d" % t}}} for t in range(TEAMS)]
        with open(os.path.join(out, "projects.yaml" if yaml else "projects.json"), "w") as f:
            f.write(to_yaml(projects) if yaml else json.dumps(projects, indent=2) + "\n")
        with Pool(2, initializer=load, initargs=(src,)) as p:
            p.map(write_real, [(out, seed, lo, hi, yaml) for lo, hi in chunks(n)])
    elif cmd == "pess":  # pess OUT N SEED
        out, n, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        for t in range(20):
            os.makedirs(os.path.join(out, "part-%02d" % t), exist_ok=True)
        with Pool(2) as p:
            p.map(write_pess, [(out, seed, lo, hi) for lo, hi in chunks(n)])
    elif cmd == "change":  # change SRC DIR SEED I...
        src, d, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        load(src)
        for i in map(int, sys.argv[5:]):
            team, name, text = dashboard(seed, i, variant=1)
            p = os.path.join(d, team, name + ".json")
            if not os.path.exists(p):
                p = p[:-5] + ".yaml"
                text = to_yaml(json.loads(text))
            os.unlink(p)
            with open(p, "w") as f:
                f.write(text)
    else:
        sys.exit("unknown command " + cmd)


main()
