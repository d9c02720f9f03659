# Sphinx configuration for the chaosfleet.stress documentation site.
#
# scripts/docs.sh stages docs/ into docs/_build/src, lets antsibull-docs write the plugin and
# role reference there from the collection's own DOCUMENTATION and argument_specs, and runs
# sphinx-build with this file. The build needs no network: no intersphinx inventories.

project = 'chaosfleet.stress'
copyright = 'chaosfleet.stress contributors'  # pylint: disable=redefined-builtin
title = 'chaosfleet.stress'
html_short_title = 'chaosfleet.stress'
html_title = 'chaosfleet.stress documentation'

extensions = ['myst_parser', 'sphinx_antsibull_ext']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
root_doc = 'index'

myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3

pygments_style = 'ansible'
highlight_language = 'YAML+Jinja'

html_theme = 'sphinx_ansible_theme'
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
display_version = False

# Fail on unresolved references inside the site; there are no external inventories to check against.
nitpicky = True
default_role = 'any'


# The generated reference points at ansible-core's own docs (M(ansible.builtin.uri), the common
# return values). With no network there are no inventories, so such references become plain links
# to docs.ansible.com here. Any other unresolved reference stays a warning and fails the build.
import re  # noqa: E402  pylint: disable=wrong-import-position

from docutils import nodes  # noqa: E402  pylint: disable=wrong-import-position

_ANSIBLE_DOCS = 'https://docs.ansible.com/ansible/latest/'
_ANSIBLE_LABELS = {
    'common_return_values': 'reference_appendices/common_return_values.html',
    'ansible_configuration_settings': 'reference_appendices/config.html',
    'action_plugins': 'plugins/action.html',
}
_OTHER_COLLECTION = re.compile(r'^ansible_collections\.(\w+)\.(\w+)\.(\w+)_(module|[a-z]+)$')


def _link_ansible_docs(app, env, node, contnode):  # pylint: disable=unused-argument
    target = node.get('reftarget', '')
    url = None
    if target in _ANSIBLE_LABELS:
        url = _ANSIBLE_DOCS + _ANSIBLE_LABELS[target]
    else:
        match = _OTHER_COLLECTION.match(target)
        if match and match.group(1, 2) != ('chaosfleet', 'stress'):
            url = _ANSIBLE_DOCS + 'collections/%s/%s/%s_%s.html' % match.group(1, 2, 3, 4)
    if url is None:
        return None
    reference = nodes.reference('', '', internal=False, refuri=url)
    reference.append(contnode.deepcopy() if contnode is not None else nodes.Text(target))
    return reference


def setup(app):
    app.connect('missing-reference', _link_ansible_docs)
