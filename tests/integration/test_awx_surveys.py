"""AWX as code (awx/): every survey question of every job template must fill a variable that the
template's playbook really takes, with a type that variable accepts.

A variable is "taken" when it is an option in meta/argument_specs.yml of a role the playbook runs,
or when the playbook passes it straight into a chaosfleet.stress module argument (k8s_pod_stress
hands its k8s_* variables to chaosfleet.stress.k8s_targets); then the module's documented option
type applies. No AWX server is needed: the rules are those of AWX surveys (answers are strings,
ints, floats or lists) and of Ansible's type conversion in argument specs.
"""

import functools
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWX_VARS = REPO / "awx" / "vars" / "chaosfleet_awx.yml"
CONFIGURE = REPO / "awx" / "configure.yml"
ANSIBLE_DOC = REPO / ".venv" / "bin" / "ansible-doc"
COLLECTION = "chaosfleet.stress."

SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
TEXT_TYPES = {"text", "textarea", "password"}
INCLUDE_ROLE = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}
# Names in a Jinja expression that are not variables: keywords, and what follows "|" (filters) or "is" (tests).
JINJA_WORDS = {"omit", "if", "else", "is", "not", "and", "or", "in", "none", "None", "true", "false", "True", "False"}
FILTER_OR_TEST = re.compile(r"(?:\|\s*|\bis\s+(?:not\s+)?)([A-Za-z_][\w.]*)")
NAME = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*)")
# The job templates the collection promises, by playbook.
REQUIRED_SURVEYS = ["memory_stress", "cpu_stress", "k8s_pod_stress", "rollback"]


class _AnsibleLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML as Ansible reads it: !unsafe marks a string Ansible must not render."""


_AnsibleLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_awx():
    return yaml.load(AWX_VARS.read_text(), Loader=_AnsibleLoader)  # nosec - a safe loader plus !unsafe


def job_templates():
    return load_awx()["chaosfleet_awx_job_templates"]


def surveyed_templates():
    return [jt for jt in job_templates() if jt.get("survey")]


# --- what a playbook takes --------------------------------------------------------------------------


def _role_dir(name):
    assert name.startswith(COLLECTION), "role %s: use the collection's roles by FQCN" % name
    return REPO / "roles" / name[len(COLLECTION):]


def _walk_tasks(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk_tasks(task.get(key))


@functools.lru_cache(maxsize=None)
def _module_options(fqcn):
    proc = subprocess.run([str(ANSIBLE_DOC), "--json", fqcn], cwd=str(REPO), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return json.loads(proc.stdout)[fqcn]["doc"]["options"]


def _action_group(group):
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    return [COLLECTION + name for name in runtime.get("action_groups", {}).get(group, [])]


def passed_variable(value):
    """The one variable a templated task argument passes on ("{{ var | default(omit) }}",
    "{{ omit if var is not defined else var | from_yaml }}"), or None."""
    if not isinstance(value, str) or not value.strip().startswith("{{"):
        return None
    expression = re.sub(r"'[^']*'|\"[^\"]*\"", "''", value.strip()[2:].rsplit("}}", 1)[0])
    not_variables = set(FILTER_OR_TEST.findall(expression)) | JINJA_WORDS
    names = {name for name in NAME.findall(expression) if name not in not_variables}
    return names.pop() if len(names) == 1 else None


def playbook_variables(playbook):
    """({variable: (where, option spec)}, {variable set by the playbook's play vars})."""
    path = REPO / playbook
    assert path.is_file(), "%s does not exist" % playbook
    taken, play_vars = {}, set()

    def add(variable, where, spec):
        if variable in taken and taken[variable][1].get("type", "str") != spec.get("type", "str"):
            raise AssertionError("%s: %s means %s and %s" % (playbook, variable, taken[variable][0], where))
        taken.setdefault(variable, (where, spec))

    def add_role(name, entry="main"):
        specs = yaml.safe_load((_role_dir(name) / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        assert entry in specs, "role %s has no entry point %s" % (name, entry)
        for option, spec in (specs[entry].get("options") or {}).items():
            add(option, "option %s of role %s" % (option, name), spec)

    def add_module_args(fqcn, args):
        options = _module_options(fqcn)
        for option, value in (args or {}).items():
            variable = passed_variable(value)
            if variable and option in options:
                add(variable, "option %s of module %s" % (option, fqcn), options[option])

    for play in yaml.safe_load(path.read_text()):
        if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            target = play.get("import_playbook") or play["ansible.builtin.import_playbook"]
            assert target.startswith(COLLECTION), "%s imports %s" % (playbook, target)
            more, more_vars = playbook_variables("playbooks/%s.yml" % target[len(COLLECTION):])
            for variable, (where, spec) in more.items():
                add(variable, where, spec)
            play_vars |= more_vars
            continue
        play_vars |= set(play.get("vars") or {})
        for role in play.get("roles") or []:
            add_role(role if isinstance(role, str) else role.get("role") or role["name"])
        for key, args in (play.get("module_defaults") or {}).items():
            modules = _action_group(key.split(".")[-1]) if key.startswith("group/" + COLLECTION) else [key]
            for fqcn in modules:
                if fqcn.startswith(COLLECTION):
                    add_module_args(fqcn, args)
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            for task in _walk_tasks(play.get(section)):
                for key, args in task.items():
                    if key in INCLUDE_ROLE:
                        add_role(args["name"], args.get("tasks_from", "main"))
                    elif key.startswith(COLLECTION) and isinstance(args, dict):
                        add_module_args(key, args)
    return taken, play_vars


# --- survey rules -----------------------------------------------------------------------------------


def _choices(question):
    choices = question.get("choices", [])
    return choices.split("\n") if isinstance(choices, str) else list(choices)


def question_problems(question, spec):
    """Why an AWX survey question cannot fill an option with this argument spec ([] when it can)."""
    problems = []
    qtype, otype = question.get("type"), spec.get("type", "str")
    choices, allowed = _choices(question), spec.get("choices")
    default = question.get("default")

    if qtype not in SURVEY_TYPES:
        return ["survey type %r is not an AWX survey type" % qtype]
    if not question.get("question_name"):
        problems.append("no question_name")
    if not isinstance(question.get("required"), bool):
        problems.append("required must be true or false")
    if qtype in ("multiplechoice", "multiselect") and not choices:
        problems.append("%s without choices" % qtype)
    if qtype in ("integer", "float", "text", "textarea", "password"):
        low, high = question.get("min"), question.get("max")
        if low is None or high is None or low > high:
            problems.append("min/max missing or min > max")

    if otype == "bool":
        if qtype != "multiplechoice" or set(choices) != {"true", "false"}:
            problems.append("a bool option needs multiplechoice true/false, not %s %s" % (qtype, choices))
    elif otype == "int":
        if qtype != "integer":
            problems.append("an int option needs an integer question, not %s" % qtype)
    elif otype == "float":
        if qtype != "float":
            problems.append("a float option needs a float question, not %s" % qtype)
    elif otype in ("str", "path"):
        if allowed:
            if qtype != "multiplechoice" or not set(choices) <= set(allowed):
                problems.append("a %s option with choices %s needs multiplechoice from them" % (otype, allowed))
        elif qtype not in TEXT_TYPES | {"multiplechoice"}:
            problems.append("a %s option needs a text question, not %s" % (otype, qtype))
    elif otype == "list":
        allowed = allowed or None
        if spec.get("elements", "str") not in ("str", "raw"):
            problems.append("a list of %s cannot come from a survey" % spec.get("elements"))
        elif qtype == "multiselect":
            if allowed and not set(choices) <= set(allowed):
                problems.append("multiselect choices %s are not all in %s" % (choices, allowed))
        elif qtype in ("text", "textarea"):
            if allowed:
                problems.append("a list option with choices %s needs multiselect" % allowed)
        else:
            problems.append("a list option needs multiselect or comma-separated text, not %s" % qtype)
    elif otype == "dict":
        if qtype not in ("text", "textarea"):
            problems.append("a dict option needs key=value or JSON text, not %s" % qtype)
    elif otype == "raw":
        if qtype == "multiselect" or qtype == "password":
            problems.append("a raw option takes a single answer, not %s" % qtype)
    else:
        problems.append("option type %s cannot come from a survey" % otype)

    if default not in (None, "") or qtype in ("integer", "float"):
        problems.extend(answer_problems(question, default, "default"))
    return problems


def answer_problems(question, answer, what="answer"):
    """Why AWX would refuse this answer (or default) to the question."""
    qtype, choices = question.get("type"), _choices(question)
    low, high = question.get("min"), question.get("max")
    if qtype == "integer":
        if not isinstance(answer, int) or isinstance(answer, bool):
            return ["%s %r is not an integer" % (what, answer)]
        if low is not None and not low <= answer <= high:
            return ["%s %r is outside %s..%s" % (what, answer, low, high)]
    elif qtype == "float":
        if not isinstance(answer, (int, float)) or isinstance(answer, bool):
            return ["%s %r is not a number" % (what, answer)]
        if low is not None and not low <= answer <= high:
            return ["%s %r is outside %s..%s" % (what, answer, low, high)]
    elif qtype == "multiplechoice":
        if answer not in choices:
            return ["%s %r is not one of %s" % (what, answer, choices)]
    elif qtype == "multiselect":
        values = answer.split("\n") if isinstance(answer, str) else answer
        if not isinstance(values, list) or not set(values) <= set(choices):
            return ["%s %r is not a subset of %s" % (what, answer, choices)]
    else:
        if not isinstance(answer, str):
            return ["%s %r is not a string" % (what, answer)]
        if low is not None and answer and not low <= len(answer) <= high:
            return ["%s %r is not %s..%s characters long" % (what, answer, low, high)]
    return []


# --- the checker itself must catch what it is meant to catch ------------------------------------------

TEXT = {"question_name": "q", "variable": "v", "type": "text", "required": False, "min": 0, "max": 10}
BOOL = {"question_name": "q", "variable": "v", "type": "multiplechoice", "required": True,
        "choices": ["true", "false"], "default": "false"}


@pytest.mark.parametrize("question,spec,expect", [
    (TEXT, {"type": "str"}, None),
    (TEXT, {"type": "path"}, None),
    (TEXT, {"type": "raw"}, None),
    (TEXT, {"type": "list", "elements": "str"}, None),
    (TEXT, {"type": "int"}, "needs an integer question"),
    (TEXT, {"type": "bool"}, "needs multiplechoice true/false"),
    (TEXT, {"type": "str", "choices": ["a", "b"]}, "needs multiplechoice from them"),
    (TEXT, {"type": "list", "elements": "str", "choices": ["a"]}, "needs multiselect"),
    (TEXT, {"type": "list", "elements": "dict"}, "cannot come from a survey"),
    (BOOL, {"type": "bool"}, None),
    (dict(BOOL, choices=["yes", "no"], default="no"), {"type": "bool"}, "needs multiplechoice true/false"),
    (dict(BOOL, default="maybe"), {"type": "bool"}, "is not one of"),
    (dict(BOOL, choices=["memory", "cpu"], default="cpu"), {"type": "str", "choices": ["memory", "cpu", "io"]},
     None),
    (dict(BOOL, choices=["memory", "disk"], default="disk"), {"type": "str", "choices": ["memory", "cpu"]},
     "needs multiplechoice from them"),
    (dict(TEXT, type="integer", min=1, max=8, default=2), {"type": "int"}, None),
    (dict(TEXT, type="integer", min=1, max=8, default=9), {"type": "int"}, "outside 1..8"),
    (dict(TEXT, type="integer", min=1, max=8, default="2"), {"type": "int"}, "not an integer"),
    (dict(TEXT, type="integer", min=1, max=8, default=2), {"type": "float"}, "needs a float question"),
    (dict(TEXT, type="float", min=0, max=100, default=50), {"type": "float"}, None),
    (dict(TEXT, type="float", min=5, max=1, default=2), {"type": "float"}, "min > max"),
    (dict(TEXT, type="boolean"), {"type": "bool"}, "not an AWX survey type"),
    (dict(TEXT, default="far too long here"), {"type": "str"}, "characters long"),
    (dict(TEXT, type="multiselect", choices=["html", "json"], default=["json"]),
     {"type": "list", "elements": "str", "choices": ["html", "markdown", "json"]}, None),
    (dict(TEXT, type="multiselect", choices=["html", "pdf"], default=["pdf"]),
     {"type": "list", "elements": "str", "choices": ["html", "json"]}, "not all in"),
    (TEXT, {"type": "dict"}, None),
    (dict(TEXT, type="integer", min=0, max=9, default=1), {"type": "dict"}, "needs key=value or JSON"),
])
def test_question_checker(question, spec, expect):
    problems = question_problems(question, spec)
    if expect is None:
        assert problems == []
    else:
        assert any(expect in p for p in problems), problems


@pytest.mark.parametrize("value,variable", [
    ("{{ k8s_namespaces | default([]) }}", "k8s_namespaces"),
    ("{{ k8s_mode | default('one') }}", "k8s_mode"),
    ("{{ (k8s_value | string) if k8s_value is defined else omit }}", "k8s_value"),
    ("{{ omit if k8s_labels is not defined\n else (k8s_labels | from_yaml) if k8s_labels is string else k8s_labels }}",
     "k8s_labels"),
    ("{{ a if b else c }}", None),
    ("{{ 'literal' }}", None),
    ("plain text", None),
    (5, None),
])
def test_passed_variable(value, variable):
    assert passed_variable(value) == variable


def test_variable_mapping_sees_roles_and_module_arguments():
    taken, play_vars = playbook_variables("playbooks/k8s_pod_stress.yml")
    assert "option experiment_name of role chaosfleet.stress.experiment" == taken["experiment_name"][0]
    assert taken["k8s_namespaces"][0] == "option namespaces of module chaosfleet.stress.k8s_targets"
    assert "experiment_type" in play_vars
    assert "no_such_variable" not in taken


# --- the AWX configuration ----------------------------------------------------------------------------


def test_every_promised_job_template_has_a_survey():
    by_playbook = {Path(jt["playbook"]).stem: jt for jt in surveyed_templates()}
    assert sorted(by_playbook) == sorted(REQUIRED_SURVEYS)
    names = [jt["name"] for jt in job_templates()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("jt", surveyed_templates(), ids=lambda jt: jt["name"])
def test_survey_questions_map_to_playbook_variables_of_the_right_type(jt):
    taken, play_vars = playbook_variables(jt["playbook"])
    survey = jt["survey"]
    assert survey.get("name") and survey.get("description") is not None and survey["spec"]
    seen, problems = set(), []
    for question in survey["spec"]:
        variable = question.get("variable")
        if variable in seen:
            problems.append("%s: asked twice" % variable)
        seen.add(variable)
        if variable not in taken:
            problems.append("%s: %s takes no such variable" % (variable, jt["playbook"]))
            continue
        where, spec = taken[variable]
        problems.extend("%s (%s): %s" % (variable, where, p) for p in question_problems(question, spec))
    for variable, value in (jt.get("extra_vars") or {}).items():
        if variable not in taken:
            problems.append("extra var %s: %s takes no such variable" % (variable, jt["playbook"]))
    assert problems == []


@pytest.mark.parametrize("jt", surveyed_templates(), ids=lambda jt: jt["name"])
def test_required_role_options_are_asked(jt):
    taken, play_vars = playbook_variables(jt["playbook"])
    required = {q["variable"] for q in jt["survey"]["spec"] if q.get("required")}
    given = required | set(jt.get("extra_vars") or {}) | play_vars
    missing = [variable for variable, (where, spec) in taken.items()
               if spec.get("required") and " of role " in where and variable not in given]
    assert missing == []


def test_workflow_nodes_answer_their_surveys():
    awx = load_awx()
    templates = {jt["name"]: jt for jt in job_templates()}
    nodes = awx["chaosfleet_awx_workflow"]["nodes"]
    identifiers = [node["identifier"] for node in nodes]
    assert len(identifiers) == len(set(identifiers))
    problems = []
    for node in nodes:
        jt = templates.get(node["job_template"])
        if jt is None:
            problems.append("%s: no job template %s" % (node["identifier"], node["job_template"]))
            continue
        questions = {q["variable"]: q for q in (jt.get("survey") or {}).get("spec", [])}
        for variable, answer in (node.get("extra_data") or {}).items():
            # A workflow node may only answer its template's survey (no prompting for extra vars).
            if variable not in questions:
                problems.append("%s: %s is not a survey question of %s" % (node["identifier"], variable, jt["name"]))
            else:
                problems.extend("%s: %s" % (node["identifier"], p) for p in answer_problems(questions[variable], answer))
        for link in ("success", "failure", "always"):
            problems.extend("%s: %s link to unknown node %s" % (node["identifier"], link, target)
                            for target in node.get(link, []) if target not in identifiers)
        # Unattended runs: every required question needs a default or a node answer.
        for variable, question in questions.items():
            if question.get("required") and question.get("default") in (None, "") and \
                    variable not in (node.get("extra_data") or {}):
                problems.append("%s: required %s has no default and no answer" % (node["identifier"], variable))
    assert problems == []


def test_game_day_is_scheduled_weekly_and_ends_with_the_emergency_stop():
    awx = load_awx()
    workflow, schedule = awx["chaosfleet_awx_workflow"], awx["chaosfleet_awx_schedule"]
    templates = {jt["name"]: jt for jt in job_templates()}
    assert re.search(r"(^|\s)DTSTART[:;]", schedule["rrule"])
    assert "RRULE:FREQ=WEEKLY;" in schedule["rrule"]
    playbooks = {node["identifier"]: templates[node["job_template"]]["playbook"] for node in workflow["nodes"]}
    assert "playbooks/game_day.yml" in playbooks.values()
    # Whatever an experiment node did, the emergency stop runs after it.
    for node in workflow["nodes"]:
        if playbooks[node["identifier"]] != "playbooks/rollback.yml":
            assert any(playbooks[f] == "playbooks/rollback.yml" for f in node.get("always", [])), \
                "%s is not always followed by the rollback" % node["identifier"]


def test_game_day_template_passes_only_what_its_playbook_reads():
    for jt in job_templates():
        if jt.get("survey"):
            continue
        text = (REPO / jt["playbook"]).read_text()
        for variable in jt.get("extra_vars") or {}:
            assert re.search(r"\b%s\b" % re.escape(variable), text), "%s does not read %s" % (jt["playbook"], variable)


def test_configure_playbook_creates_everything_from_the_vars_file():
    plays = yaml.safe_load(CONFIGURE.read_text())
    assert len(plays) == 1 and plays[0]["hosts"] == "localhost"
    assert plays[0]["vars_files"] == ["vars/chaosfleet_awx.yml"]
    tasks = {next(k for k in task if k.startswith("awx.awx.")): task for task in plays[0]["tasks"]}
    job_template = tasks["awx.awx.job_template"]
    assert job_template["loop"] == "{{ chaosfleet_awx_job_templates }}"
    assert job_template["awx.awx.job_template"]["survey_spec"] == "{{ item.survey | default({}) }}"
    assert "awx.awx.workflow_job_template" in tasks and "awx.awx.workflow_job_template_node" in tasks
    schedule = tasks["awx.awx.schedule"]["awx.awx.schedule"]
    assert schedule["unified_job_template"] == "{{ chaosfleet_awx_workflow.name }}"
    assert schedule["rrule"] == "{{ chaosfleet_awx_schedule.rrule }}"


def test_scheduled_game_day_spec_uses_only_experiment_settings():
    # The same rules as the spec check in playbooks/game_day.yml, so a wrong key fails here and not
    # at 10:00 on a Wednesday.
    spec = yaml.safe_load((REPO / "awx" / "game_day.yml").read_text())
    known = {k[len("experiment_"):] for k in yaml.safe_load(
        (REPO / "roles" / "experiment" / "defaults" / "main.yml").read_text()) if k.startswith("experiment_")}
    assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", spec["name"])
    assert set(spec.get("defaults", {})) <= known - {"name", "type"}
    names = [e["name"] for e in spec["experiments"]]
    assert len(names) == len(set(names))
    for experiment in spec["experiments"]:
        assert experiment["type"] in ("memory", "cpu", "io")
        assert experiment.get("hosts") or experiment.get("k8s")
        assert set(experiment) <= known | {"hosts", "k8s"}, set(experiment) - known
    # The weekly run must be able to pass: a steady state is defined, and the gate opens on pass.
    assert spec["defaults"]["probes"] and spec["gate"]["continue_on"] == ["pass"]


@pytest.mark.parametrize("playbook", ["memory_stress", "cpu_stress", "k8s_pod_stress"])
def test_experiment_surveys_ask_where_the_results_go(playbook):
    """Results leave the job from the forms too: a directory, an upload URL and a webhook URL, all optional and
    off when empty; the URLs carry tokens, so they are password questions (AWX hides the answers)."""
    jt = next(j for j in surveyed_templates() if Path(j["playbook"]).stem == playbook)
    questions = dict((q["variable"], q) for q in jt["survey"]["spec"])
    for variable, qtype in (("experiment_publish_copy_to", "text"), ("experiment_publish_upload_url", "password"),
                            ("experiment_publish_webhook_url", "password")):
        assert variable in questions, variable
        assert (questions[variable]["type"], questions[variable]["required"], questions[variable]["default"]) == \
            (qtype, False, ""), variable
