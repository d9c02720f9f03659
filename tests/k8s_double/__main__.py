"""Serve the API double until interrupted.

    python -m tests.k8s_double --synthetic 200,5,3
    python -m tests.k8s_double --fixture pods.json
    python -m tests.k8s_double --lab-state .lab/state.json --node-name node1 --node-ip 127.0.0.1
    python tests/k8s_double --synthetic 50,2,2      # as a script works too
"""

import argparse
import json
import os
import signal
import sys
import time

if __package__ in (None, ""):
    # Run as a script (python tests/k8s_double): import the package by its folder name.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from k8s_double import ApiDouble, load_fixture, objects_from_lab_state, synthetic_cluster
else:
    from . import ApiDouble, load_fixture, objects_from_lab_state, synthetic_cluster


def main(argv=None):
    parser = argparse.ArgumentParser(prog="k8s_double",
                                     description="Serve the Kubernetes API double (see its __init__.py).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--fixture", help="JSON or YAML file with pods and nodes")
    source.add_argument("--lab-state", help="the lab's state JSON (tests/lab/lab.py)")
    source.add_argument("--synthetic", metavar="PODS,NODES,NAMESPACES", help="generate a synthetic cluster")
    parser.add_argument("--node-name", help="node name for lab pods (default: each pod's own)")
    parser.add_argument("--node-ip", default="127.0.0.1", help="InternalIP for lab nodes")
    parser.add_argument("--token", help="admin bearer token (random by default)")
    parser.add_argument("--workdir", help="where to write ca.crt and kubeconfig (temporary by default)")
    args = parser.parse_args(argv)

    if args.fixture:
        objects = load_fixture(args.fixture)
    elif args.lab_state:
        with open(args.lab_state) as handle:
            objects = objects_from_lab_state(json.load(handle), args.node_name, args.node_ip)
    else:
        pods, nodes, namespaces = (int(x) for x in args.synthetic.split(","))
        objects = synthetic_cluster(pods=pods, nodes=nodes, namespaces=namespaces)

    # SIGTERM ends the double like Ctrl-C, so its temporary directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with ApiDouble(objects, token=args.token, workdir=args.workdir) as api:
        print(json.dumps({"url": api.url, "kubeconfig": api.kubeconfig_path, "ca_cert": api.ca_path,
                          "pods": len(objects["pods"]), "nodes": len(objects["nodes"])}), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
