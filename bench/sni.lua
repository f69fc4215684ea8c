-- wrk connects to 127.0.0.1 whatever the URL's host, which stays the TLS SNI (wrk sets SNI from the URL):
-- the ingress bench measures https://<order hostname>:<port>/ without a DNS record for the hostname.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("127.0.0.1", service)
end
