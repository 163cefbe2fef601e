"""
Tools for tests and the demo, not for production: a throwaway PKI with RFC
3820 proxies (C{jobmon-pki}) and a throwaway bearer-token issuer.
"""
