package fastpath
