# Shared fixtures. pytest.ini puts the repo and .collections (the collection link) on sys.path.
