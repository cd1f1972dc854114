[uplink]
port = 1
