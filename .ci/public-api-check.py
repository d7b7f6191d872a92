#!/usr/bin/env python3
"""Fails when a public item of herald names a librdkafka type (rdkafka or rdkafka-sys) in its
signature. Reads rustdoc's JSON output, which resolves every path:
    RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Z unstable-options --output-format json" \
        cargo doc --no-deps -p herald
    python3 .ci/public-api-check.py target/doc/herald.json
"""
import json
import sys

BANNED = {"rdkafka", "rdkafka_sys"}


def named_types(node, paths, banned, found):
    """Collects the rdkafka paths that `node` (part of an item's signature) refers to."""
    if isinstance(node, dict):
        if "id" in node and "path" in node:
            target = paths.get(str(node["id"]))
            if target and target["crate_id"] in banned:
                found.add("::".join(target["path"]))
            elif isinstance(node["path"], str) and node["path"].split("::")[0] in BANNED:
                found.add(node["path"])
        for value in node.values():
            named_types(value, paths, banned, found)
    elif isinstance(node, list):
        for value in node:
            named_types(value, paths, banned, found)


def main(path):
    doc = json.load(open(path))
    banned = {int(k) for k, v in doc["external_crates"].items() if v["name"] in BANNED}
    offenders = []
    for item in doc["index"].values():
        if item.get("crate_id") != 0:
            continue
        found = set()
        named_types(item.get("inner"), doc["paths"], banned, found)
        if found:
            where = doc["paths"].get(str(item["id"]), {}).get("path") or [item.get("name") or "(impl)"]
            offenders.append(f"  {'::'.join(where)}: {', '.join(sorted(found))}")
    if offenders:
        print("public items of herald name librdkafka types (wrap them in herald's own):")
        print("\n".join(sorted(offenders)))
        return 1
    print(f"public API: {len(doc['index'])} items, none names a librdkafka type")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
