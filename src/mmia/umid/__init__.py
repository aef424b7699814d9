"""UMID: text-only membership inference for CLIP- and CLAP-style models (arXiv 2603.14222).

Import the API from the submodules (`mmia.umid.api.audit_queries`, `mmia.umid.audit`);
this package stays import-light so `mmia` starts fast.
"""
