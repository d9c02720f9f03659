"""A Kubernetes API double for testing chaosfleet.stress.k8s_targets without a cluster.

    from k8s_double import ApiDouble, synthetic_cluster
    with ApiDouble(synthetic_cluster(pods=50)) as api:
        ...  # api.kubeconfig_path, api.url, api.token, api.ca_path, api.calls("pods")

Run it by hand with ``python -m tests.k8s_double --help`` from the repository root.
"""

from .objects import load_fixture, make_node, make_pod, objects_from_lab_state, synthetic_cluster
from .label_field_selectors import SelectorError, labels_match, parse_field_selector, parse_label_selector
from .server import ApiDouble

__all__ = ["ApiDouble", "SelectorError", "labels_match", "load_fixture", "make_node", "make_pod",
           "objects_from_lab_state", "parse_field_selector", "parse_label_selector", "synthetic_cluster"]
