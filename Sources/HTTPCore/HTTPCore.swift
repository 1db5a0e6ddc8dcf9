/// HTTPCore: HTTP/1.1 parsing and the Dispatch socket server.
