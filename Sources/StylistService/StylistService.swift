/// StylistService: config, router and the v1 API.
