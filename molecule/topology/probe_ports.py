# Run with `python3 -c` on a container by verify.yml: tries a TCP connection to each
# host:port argument (in parallel, 3 s each) and prints one line per target:
# "<host>:<port> open", "dropped" (no answer: the firewall's drop) or "refused".
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def probe(target):
    host, port = target.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect((host, int(port)))
            return target + " open"
        except TimeoutError:
            return target + " dropped"
        except OSError as exc:
            return target + (" refused" if exc.errno == 111 else " error " + str(exc))


with ThreadPoolExecutor(len(sys.argv) - 1) as pool:
    print("\n".join(pool.map(probe, sys.argv[1:])))
