"""Rank log templates by how new or surging they are before the alert, whatever their level.

Lines are split into a *recent* window (shortly before startsAt up to a little after) and a
*baseline* window before it. Each template scores by novelty (absent from the baseline),
surge (recent rate over baseline rate), what its words say (an OOM kill, a firewall block, a
DNS or TLS failure, a listen address, an error) and rarity (a line seen twice says more than
one repeated a thousand times). Info, warning and kernel lines compete with error lines: the
cause of an outage is often an ordinary-looking line (``Listening on 127.0.0.1:9100``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aiops_analyzer.evidence.logline import ERROR_LEVELS, condense, is_frame, level_of, shorten
from aiops_analyzer.evidence.templates import TemplateMiner
from aiops_analyzer.schemas import LogTemplate

# What a line speaks of. Order matters only for reading; a line may carry several tags.
# A systemd service unit starting (not a user's session or its manager), or cron running a
# command: the start of a scheduled job, whose work can be what a resource alert measures.
UNIT_START = re.compile(
    r"\bStart(?:ing|ed) (?!user@|user-runtime-dir@|session-)([\w@.-]+\.service)\b"
)
CRON_COMMAND = re.compile(r"\bCRON\[\d+\]: \(\S+\) CMD \((.+?)\)?$")

TAGS: dict[str, re.Pattern[str]] = {
    "oom": re.compile(
        r"OOMKilled|out of memory|\boom[-_ ]?kill|killed process|earlyoom|oom_reaper"
        r"|exit(?:ed)? (?:with )?(?:code|status)[= ]?137|memory cgroup out of memory"
        # systemd-oomd kills a whole cgroup on pressure: "Killed /user.slice/... due to memory
        # pressure"; earlyoom's journal lines carry no "earlyoom" in the message itself.
        r"|systemd-oomd|\bKilled \S+ due to memory|low memory! at or below"
        r"|sending SIG(?:TERM|KILL) to process \d+ uid|\bbadness \d+, VmRSS",
        re.I,
    ),
    # The filesystem or the disk under it fails: the kernel's filesystem errors, a read-only
    # remount after them, block-layer I/O errors, and applications hitting EROFS. Space is not
    # the cause here; the device or the filesystem is.
    "fs_error": re.compile(
        r"\b(?:EXT[234]|XFS|BTRFS)(?:-fs)? (?:error|warning|critical|\(\S+\): (?:metadata I/O"
        r" error|Corruption|log I/O error|Filesystem has been shut down))"
        r"|Remounting filesystem read-only|read-only file ?system|\bEROFS\b"
        r"|I/O error,? dev \S+,? sector|Buffer I/O error on dev|blk_update_request: \S* ?I/O error"
        r"|Medium Error|Unrecovered read error|end_request: I/O error|journal (?:has )?aborted"
        r"|Detected aborted journal|Shutting down filesystem",
        re.I,
    ),
    "firewall": re.compile(
        r"\bUFW (?:BLOCK|DENY)|iptables|nftables|firewalld|\bREJECT\b|packet (?:dropped|filtered)"
        r"|\bDROP\b.*\b(?:SRC|DPT)=|\b(?:BLOCK|DENY|REJECT)\w*\]? IN=\S* OUT=",
        re.I,
    ),
    # The kernel's connection-tracking table is full: new connections are dropped.
    "conntrack": re.compile(
        r"nf_conntrack: (?:nf_conntrack: )?table full|conntrack table (?:is )?full"
        r"|conntrack.*dropping packet",
        re.I,
    ),
    # An interface's MTU changed, or packets too large for the path are refused: jumbo frames
    # set on a host whose switch path carries 1500 bytes stall large transfers (replication,
    # TLS handshakes with long chains) while pings and health checks pass.
    "mtu": re.compile(
        r"changing MTU from \d+ to \d+|\bMTU (?:changed|set|mismatch|to \d{4})"
        r"|frag(?:mentation)? needed|packet too big|\bPMTU\b|message too long|\bEMSGSIZE\b",
        re.I,
    ),
    # The machine ran out of local (ephemeral) ports: connect() fails with EADDRNOTAVAIL when
    # connections in TIME_WAIT to one destination use up the range.
    "ports": re.compile(
        r"cannot assign requested address|\bEADDRNOTAVAIL\b|ephemeral ports?\b.{0,30}"
        r"(?:exhaust|run out|depleted)|no (?:free|available) (?:local |ephemeral )?ports?"
        r"|port exhaustion",
        re.I,
    ),
    # The NIC lost its carrier, flaps or renegotiated at a lower speed.
    "link": re.compile(
        r"\bLink is Down\b|\blink (?:is |went )?down\b(?! (?:detect|delay|timer))"
        r"|carrier (?:lost|off|down)|Lost carrier|NETDEV WATCHDOG"
        r"|transmit queue \d+ timed out|Link is Up - (?:10|100) ?Mbps",
        re.I,
    ),
    # Planned work announced by whoever did it (a maintenance mode or window, Consul's
    # `maint -enable`): the outage that follows is planned, not a failure.
    "maintenance": re.compile(
        r"\bmaintenance[ _-](?:mode|window)\b|\bentering maintenance\b|\bmaint -enable\b"
        r"|\b(?:planned|scheduled) (?:maintenance|downtime)\b",
        re.I,
    ),
    # A disk failing: md dropping a member, the kernel's medium errors, smartd's sector counts.
    "disk_failure": re.compile(
        r"md/raid\d*:\S+: Disk failure on|\bMedium Error\b|Unrecovered read error"
        r"|\bUNC\b|Currently unreadable \(pending\) sectors|Offline uncorrectable sectors"
        r"|Reallocated_Sector_Ct.*(?:increased|changed)|\bDegradedArray event\b"
        r"|\bFailEvent event detected\b",
        re.I,
    ),
    # A network file system's server that stopped answering (the kernel's NFS client, CIFS):
    # whatever touches the mount hangs in D state.
    "nfs": re.compile(
        r"\bnfs\S*: server \S+ not responding|\bCIFS\b.*\bhas not responded\b"
        # A hung task's stack blocked in an NFS call (the kernel's hung-task report).
        r"|\brpc_wait_bit_killable\b|\bnfs4?_\w+\+0x[0-9a-f]+/0x[0-9a-f]+ \[nfs(?:v\d)?\]"
        r"|\bCIFS\b.*(?:reconnect|Send error) .*\bserver\b|\bsmb2?\S*: .*\bnot responding\b",
        re.I,
    ),
    "dns": re.compile(
        # Not the kernel's ACPI "Could not resolve symbol" at every boot.
        r"no such host|NXDOMAIN|SERVFAIL|name resolution|could not resolve(?! symbol)|resolve host"
        r"|getaddrinfo|lookup \S+ on \S+|dns (?:lookup|query|resolution)|EAI_AGAIN"
        r"|ENOTFOUND|UnknownHostException|NameResolutionError|Name or service not known"
        r"|nodename nor servname|server misbehaving|no servers could be reached"
        r"|degraded feature set|resolv\.conf|DNS server \S+ (?:timed out|not responding)"
        r"|(?:DNS|resolver) (?:request |query )?(?:timed out|timeout|failed)"
        # A query to a resolver's port 53 that fails (Go's "read udp A->B:53: i/o timeout",
        # CoreDNS's forward plugin).
        r"|(?:udp|tcp) \S+->\S+:53\b|plugin/forward"
        # musl (Alpine), Python's socket, Rust's std, nginx's upstream names, .NET.
        r"|Name does not resolve|\bgaierror\b|failed to lookup address information"
        r"|host not found in upstream|unknown host\b|No such host is known",
        re.I,
    ),
    "tls": re.compile(
        r"x509|certificate (?:has )?expired|certificate verify|tls handshake|ssl handshake"
        r"|SSL routines|unknown authority|bad certificate|certificate is not valid"
        r"|handshake (?:error|fail)|CERTIFICATE_VERIFY_FAILED|ERR_CERT_|SSL_ERROR_"
        r"|self[- ]signed certificate|certificate (?:will )?expires? (?:in|soon|today)"
        # Go's form of the peer's TLS alert: "remote error: tls: expired certificate".
        r"|remote error: tls: |expired certificate"
        # Java's trust store, Node's error codes, a certificate for another host name (Go,
        # Node, Python, curl).
        r"|PKIX path building failed|unable to find valid certification path|SSLHandshakeException"
        r"|CERT_HAS_EXPIRED|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT"
        r"|certificate is valid for \S+.{0,200}\bnot\b|does not match certificate's altnames"
        r"|hostname mismatch|doesn't match (?:either of )?'|no alternative certificate subject name"
        r"|SSL: no alternative certificate|subjectAltName does not match"
        # certbot / ACME renewal that fails (its healthy "not due for renewal" is no match).
        r"|failed to renew|renewals? (?:failed|failure)|(?:\brenew\w*|certbot|acme\.sh)\S*.*"
        r"\b(?:failed|error|unable|could not)\b|(?:acme )?challenge (?:failed|invalid)",
        re.I,
    ),
    "listen": re.compile(
        r"listening on|listen(?:ing)? (?:address|addr)|bind(?:ing)? to|address already in use"
        r"|bind\(\)|\bbind: |serving on|started server on"
        # Structured loggers: msg="listening" component=metrics addr=127.0.0.1:9464
        r"|\blistening\W{1,3}(?:\w+=\S+ ){0,3}(?:addr|address|bind|host)=",
        re.I,
    ),
    "network": re.compile(
        r"connection refused|connection reset|no route to host|network is unreachable"
        r"|ECONNREFUSED|ECONNRESET|ETIMEDOUT|i/o timeout|timed out|broken pipe|\bupstream\b"
        r"|link is down|NIC Link is Down|carrier lost|packet loss|retransmi"
        # A dependency called over the network that is down or slow, in clients' words:
        # gRPC status codes, HTTP clients' timeouts, proxies (nginx, Envoy), circuit breakers.
        r"|EHOSTUNREACH|ENETUNREACH|ESOCKETTIMEDOUT|socket hang up|deadline exceeded"
        r"|DeadlineExceeded|DEADLINE_EXCEEDED|code ?= ?Unavailable|\bUNAVAILABLE\b"
        r"|Read timed out|ReadTimeout|ConnectTimeout|SocketTimeoutException|Client\.Timeout"
        r"|timeout awaiting|upstream request timeout|upstream connect error|no live upstreams"
        r"|server closed the connection unexpectedly|RemoteDisconnected|Connection aborted"
        r"|circuit ?breaker\S*(?: '?[\w.-]+'?)? (?:is )?(?:now )?open\b|CallNotPermitted"
        r"|503 Service Unavailable|Bad Gateway|Gateway Time-?out|timeout of \d+ ?ms exceeded"
        # "network timeout at: URL", "read timeout", "request timeout" (not "timeout=30s").
        r"|\b(?:network|socket|read|write|connect(?:ion)?|request|response|upstream|call|rpc"
        r"|http|client) time-?out\b(?!\s*[=:]\s*\d)"
        # Java's and Python's clients: a refused or failed connection in their own words.
        r"|java\.net\.ConnectException|NoHttpResponseException|Max retries exceeded with url"
        r"|NewConnectionError|\bEPIPE\b|\bECONNABORTED\b",
        re.I,
    ),
    # The service hit a limit of its own: file descriptors, threads, workers, connections slots
    # of its web server. Requests fail or queue though every dependency is healthy.
    "resource_limit": re.compile(
        r"too many open files|\bE[MN]FILE\b|out of file descriptors|file descriptor limit"
        r"|worker_connections are not enough|RejectedExecutionException"
        r"|thread ?pool\S* (?:is )?(?:exhausted|full|saturated)|(?:executor|task|work) queue"
        r" (?:is )?full|unable to create (?:new )?native thread|pthread_create failed"
        r"|Resource temporarily unavailable|WORKER TIMEOUT|listen queue\b.*\bfull"
        r"|reached (?:pm\.)?max_children|MaxRequestWorkers|no (?:free|idle) workers?",
        re.I,
    ),
    # A dependency rejecting the service's credentials (a rotated password, an expired token or
    # key, a revoked grant). Not sshd's "authentication failure" from internet scanners.
    "auth": re.compile(
        r"password authentication failed|Access denied for user|\bauthentication failed\b"
        r"|invalid (?:credentials|api[ _-]?key|access[ _-]?key|token)|\bUnauthenticated\b"
        r"|code ?= ?PermissionDenied|\b401 Unauthorized|\b403 Forbidden|invalid_grant"
        r"|invalid_client|token (?:has |is )?expired|ExpiredToken|InvalidAccessKeyId"
        r"|SignatureDoesNotMatch|\bNOAUTH\b|\bWRONGPASS\b|SASL authentication failed"
        r"|permission denied for (?:table|relation|schema|database|sequence)"
        # Object stores and registries: S3's and GCS's refusals, a registry's pull denied.
        r"|\bAccessDenied\b|InvalidClientTokenId|\bunauthorized: authentication required"
        r"|pull access denied",
        re.I,
    ),
    # A data store that refuses writes because it is full or read-only (Redis at maxmemory or
    # unable to persist, Elasticsearch's flood stage, a read-only replica, SQLite full).
    "store_full": re.compile(
        r"OOM command not allowed|> 'maxmemory'|\bMISCONF\b|unable to persist to disk"
        r"|read-only-allow-delete|flood[- ]stage (?:disk )?watermark|index read-only"
        r"|READONLY You can't write|could not extend file|database or disk is full",
        re.I,
    ),
    "deploy": re.compile(
        # Not the user called "deploy" (sshd, sudo, pam: "for deploy", "user deploy(uid="),
        # nor kubectl's resource names ("kubectl scale deploy/api --replicas=0").
        # Nor sudo's log of a user called "deploy" ("deploy : TTY=pts/1 ; PWD=/home/deploy"),
        # nor a path.
        r"(?<!user )(?<!for )(?<!/)\bdeploy(?:ed|ing|ment)?\b(?![(@/])(?! ?: (?:TTY|PWD)=)"
        r"|\brollout\b|rolled out|rolling (?:update|restart)"
        r"|new version|upgraded? (?:to|from) v?\d|starting \S+ (?:version|v)\s*[=:]?\s*v?\d"
        # Not ECS logging's schema version ("ecs.version": "1.2.0" on every line).
        r"|(?<!ecs\.)\bversion\"?\s*[=:]\s*\"?v?\d+\.\d+|image \S+ (?:pulled|updated)"
        r"|migration \S* ?applied"
        # A start-up line that names its version: "app version 4.2.0 started", "api 1.4.2
        # starting on port 8000".
        r"|\bv?\d+\.\d+\.\d+\S* (?:\([^)]{0,60}\) )?(?:start(?:ed|ing)\b|booting)"
        r"|version v?\d+\.\d+\.\d+\S* (?:start|boot|is up|ready)"
        # A package installed at a version (apt's pin, dpkg's own lines): an upgrade.
        r"|\b(?:apt(?:-get)?|dnf|yum|zypper)\b.* (?:install|upgrade)\b.*\S=\d[\w.:~+-]*"
        r"|\bUnpacking \S+ \(\d[^)]*\) over \(|\bSetting up \S+ \(\d",
        re.I,
    ),
    # A configuration-management run changing the machine (Ansible's module invocations in the
    # journal, a Puppet catalog or resource change, Chef, Salt): a file removed, a config or a
    # firewall rule rewritten, shortly before something broke.
    "change": re.compile(
        r"\bansible-\S+ Invoked with\b|\bPLAY RECAP\b|Applied catalog in|\bensure (?:changed|"
        r"removed)|ensure: (?:absent|removed|created)|content changed '\{|Chef (?:Infra )?Client "
        r"finished|salt-minion.*\b(?:changed|Executing state)",
        re.I,
    ),
    "reboot": re.compile(
        r"\breboot|unattended-upgrade|system is going down|shutdown scheduled|rebooting"
        r"|Booting Linux|systemd-shutdown|kernel: Linux version"
        # logind and systemd on the way down: a power-off is a reboot that someone finishes.
        r"|System is powering (?:down|off)|Power key pressed|Reached target (?:Reboot|Power-Off)"
        r"|\bkexec\b"
        # An operator's own reboot or power-off, as sudo logs it (`COMMAND=/usr/sbin/shutdown
        # -r now`, `systemctl reboot`).
        r"|\bshutdown\s+(?:-\w*[rhP]\b|--(?:reboot|halt|poweroff)\b)"
        r"|COMMAND=\S*/(?:reboot|poweroff|halt)\b|systemctl\s+(?:reboot|poweroff|halt)\b",
        re.I,
    ),
    "shutdown": re.compile(
        r"\bSIG(?:TERM|INT|QUIT)\b|received signal|signal[=: ]+(?:terminated|interrupt)"
        r"|shutting down|shutdown complete|graceful(?:ly)? (?:shutdown|stop)"
        # systemd stopping a service unit (not a user's session manager), and an operator's
        # command that stops one (sudo's COMMAND=, a shell history line).
        r"|\bStopp(?:ing|ed) (?!user@|user-runtime-dir@|session-)[\w@.-]+\.service\b"
        r"|(?:systemctl|rc-service|service \S+) (?:--now )?(?:stop|kill|disable --now|mask --now)\b"
        r"|\b(?:docker|podman)(?:-compose| compose| container)? (?:stop|kill|rm -f|down)\b"
        r"|kubectl (?:scale\b.*--replicas[= ]0\b|drain\b|delete (?:pod|deploy))",
        re.I,
    ),
    "lock": re.compile(
        r"lock wait|deadlock|waiting for (?:a |the )?lock|lock timeout|could not obtain lock"
        r"|still waiting for \w+ ?lock|lock contention|holding the lock"
        # A session idle in a transaction holds its locks (PostgreSQL's timeout says so).
        r"|idle[- ]in[- ]transaction"
        # MySQL's metadata lock (an ALTER waiting behind a transaction, every query behind it).
        r"|metadata lock"
        # ORMs' and stores' own words: Hibernate/Spring lock exceptions, SQLite, a
        # distributed lock that cannot be taken, MongoDB's write conflicts.
        r"|Lock(?:Acquisition|Timeout)Exception|CannotAcquireLock|PessimisticLock"
        r"|database (?:table )?is locked|SQLITE_BUSY|WriteConflict"
        r"|(?:could not|failed to|unable to|cannot) (?:create/)?acquire (?:the |a )?(?:\w+ )?lock",
        re.I,
    ),
    "disk": re.compile(
        r"no space left|ENOSPC|disk (?:is )?full|inodes?\b.*(?:full|exhaust)|too many files"
        r"|\[Errno 28\]|Disk quota exceeded|\bEDQUOT\b|file ?system (?:is )?full"
        r"|(?:not enough|insufficient) (?:free )?(?:disk )?space"
        # The kubelet short of disk: evicting for ephemeral-storage or nodefs/imagefs, image
        # garbage collection finding nothing to free.
        r"|low on resource: (?:ephemeral-storage|nodefs|imagefs)"
        r"|reclaim\S*\W+resourceName=\W*(?:ephemeral-storage|nodefs|imagefs)"
        r"|(?:image|container) garbage collection failed|DiskPressure",
        re.I,
    ),
    "config": re.compile(
        r"missing (?:required )?(?:setting|config|env|variable)|required (?:setting|variable)"
        # A KeyError on an environment variable's name (KeyError: 'DATABASE_URL'), not on a
        # data key ('enterprise'), which is the code's bug.
        r"|invalid config|configuration error|is not set|unknown (?:flag|option)"
        r"|(?-i:KeyError: '[A-Z][A-Z0-9_]+')",
        re.I,
    ),
    # Collector stalls as runtimes log them: JVM (`Pause Full`, `Full GC`, `GC overhead limit
    # exceeded`), Go's gctrace (`gc 412 @63.1s 31%:` = 31% of CPU in GC), V8's --trace-gc
    # (`Mark-Compact`), Elasticsearch (`[gc][..] overhead, spent [2.1s] collecting`).
    "gc": re.compile(
        # Not the kubelet's image or container garbage collection (disk, not a heap).
        r"\bGC\b.*pause|\bpause (?:full|young)\b|(?<!image )(?<!container )(?<!to )garbage collect"
        r"|Full GC|allocation failure"
        r"|gc overhead|\bgc \d+ @\d+(?:\.\d+)?s \d+%:|\bMark-(?:Compact|sweep)\b"
        r"|\[gc\].*\bspent \[[\d.]+m?s\] collecting",
        re.I,
    ),
    # Memory swapping in its usual words; not "swapped alias" nor a "swap_buffers" field.
    "swap": re.compile(
        # Not the OOM killer's cgroup report ("swap: usage 0kB, limit 0kB"): no swapping.
        r"\bswap(?:ping|s|in|out|on|off|file|space|iness)?\b(?!_|: usage)|swapped (?:in|out)|kswapd"
        r"|page allocation stall|thrash",
        re.I,
    ),
    # A clock that is off or cannot be synchronised; a healthy sync ("Contacted time server",
    # "Initial clock synchronization", "Selected source") names no cause.
    "clock": re.compile(
        r"clock skew|clock drift|time (?:jump|drift)|no selectable sources|System clock wrong"
        r"|can(?:'|no)t synchroni[sz]e|clock (?:is )?(?:unsynchroni[sz]ed|not synchroni[sz]ed)"
        r"|clock (?:was )?stepped|Timed out waiting for reply|(?:ntp|chrony|timesync|time server)"
        r"\S*.*\b(?:fail\w*|error|unreachable|timed? ?out|can'?t|cannot|unable|lost|not reach)"
        # What a skewed clock breaks: tokens "used before" their issue time, requests a
        # signing service finds too far off, Kerberos tickets.
        r"|\b(?:Jwt|JWT|token) used before\b|issued in the future|RequestTimeTooSkewed"
        r"|KRB_AP_ERR_SKEW|Clock skew too great|token (?:is )?not (?:yet )?active"
        # A token or certificate "not valid yet" (JWT's nbf/iat in the future of this clock).
        r"|\bnot valid yet\b|\bnot yet valid\b|\bnbf\b.{0,40}\bfuture|issued at.{0,20}future",
        re.I,
    ),
    # Database statements that take long: apps' "slow query" warnings, PostgreSQL's
    # log_min_duration_statement, MySQL's slow log, Redis' SLOWLOG. A slow *request* is the
    # symptom, not this.
    "slow_query": re.compile(
        r"slow (?:sql |db |database )?quer(?:y|ies)|slow statement|\bslowlog\b|Query_time: \d"
        r"|\bduration: \d+(?:\.\d+)? ms +(?:statement|execute|bind|parse)"
        r"|\bquery took \d|long[- ]running (?:quer|statement|transaction)",
        re.I,
    ),
    "queue": re.compile(r"queue (?:is )?full|backlog|lag(?:ging)?\b|consumer.*behind", re.I),
    # A database refusing or running out of connections (the 5xx behind it are its fault).
    "database": re.compile(
        r"too many (?:clients|connections)|remaining connection slots|connection pool"
        r" (?:exhausted|timeout|is full)|pool exhausted|QueuePool limit|could not connect to"
        r" (?:server|database)|(?:acquir(?:e|ing)|obtain) (?:a )?(?:JDBC |DB |database )?connection"
        # A client-side pool with no free connection, in each stack's words: HikariCP, Knex,
        # node-postgres / generic-pool, ActiveRecord, Go's database/sql wait counters.
        r"|Connection is not available, request timed out|pool is probably full"
        r"|all pooled connections were in use|ResourceRequest timed out"
        r"|timeout exceeded when trying to connect|waiting for (?:a )?(?:free |idle )?connection"
        r"|the database system is (?:starting up|shutting down|in recovery mode)"
        # Pools of other clients: Jedis, Commons DBCP/Pool, Npgsql, mysql2.
        r"|Could not get a resource from the pool|Timeout waiting for idle object"
        r"|Cannot get a connection, pool error|connection pool has been exhausted",
        re.I,
    ),
    "rate_limit": re.compile(
        # Not the kernel's own log throttling ("net_ratelimit: 1867 callbacks suppressed").
        r"too many requests|(?<!\w)rate[- ]?limit(?:ed|ing|s)?\b|quota exceeded"
        r"|(?:status|code)[=: ]+429\b"
        r"|\" 429 |\b429 Too"
        # Throttling by other protocols: SMTP 421/451 4.7.x, cloud APIs' throttling errors.
        r"|\b(?:421|451)[ -]4\.7\.\d+|\bthrottl(?:ed|ing)\b|ThrottlingException|\bSlowDown\b"
        r"|RequestLimitExceeded|TooManyRequests|RESOURCE_EXHAUSTED|code ?= ?ResourceExhausted",
        re.I,
    ),
    # A batch job, cron or systemd unit that ended in failure, and the tools' own errors.
    "job": re.compile(
        r"Failed with result|code=exited, status=[1-9]|status=\d+/(?:FAILURE|NOPERM)"
        r"|(?:pg_dump|pg_basebackup|mysqldump|rsync|restic|borg|tar|gzip)"
        r"(?:\[\d+\])?: (?:error|fatal)|rsync error|backup (?:failed|aborted|error)"
        r"|job \S+ failed|(?:job|task|script) (?:failed|exited with)"
        r"|exit (?:status|code) [1-9]\d*\b(?! \(?killed)|returned non-zero exit"
        r"|(?:start|stop) operation timed out|timeout: sending signal"
        # Kubernetes Jobs and CronJobs, cron, APScheduler, Airflow, Celery beat.
        r"|BackoffLimitExceeded|reached the specified backoff limit|active longer than specified"
        r"|failed with exit status [1-9]|\bJob \"[^\"]+\" raised an exception"
        r"|of job .* was missed by"
        r"|marking task as (?:failed|up_for_retry)",
        re.I,
    ),
    "consumer": re.compile(
        r"rebalanc|left (?:the )?(?:consumer )?group|LeaveGroup|leaving (?:the )?group"
        r"|poll timeout|consumer (?:stopped|paused|closed|shut"
        r" ?down|is not running|has no partitions)|heartbeat (?:failed|expired|timeout)"
        r"|session timed out|max\.poll\.interval|member \S+ (?:removed|has failed)"
        r"|no consumers|consumer (?:cancel|timeout)|worker (?:lost|offline|stopped)"
        # Kafka commits refused after a rebalance, RabbitMQ's ack timeout closing the channel,
        # Celery workers lost, Sidekiq/Celery heartbeats missed.
        r"|CommitFailedException|offset commit (?:failed|cannot be completed)|partitions revoked"
        r"|delivery acknowledgement on channel \d+ timed out|consumer_timeout"
        r"|WorkerLostError|Worker exited prematurely|missed heartbeat",
        re.I,
    ),
    # A replicated store changing its primary: Redis Sentinel's +switch-master, a replica
    # connecting to a new master, Patroni's and etcd's leader changes, MySQL orchestrators.
    "failover": re.compile(
        r"\+switch-master|\bfail(?:ed|ing)? ?over\b|promot(?:ed|ing)\b.{0,30}\b(?:master|primary"
        r"|leader)|MASTER MODE enabled|turning into a replica|Connecting to MASTER"
        r"|became (?:the )?(?:leader|primary|master)|new (?:master|primary|leader)\b"
        r"|(?:lost|acquired) (?:the )?leader(?:ship| lock)",
        re.I,
    ),
    # A consumer that fails on one record and retries it forever (a poison message): nothing
    # behind it on that partition or queue is consumed.
    "poison": re.compile(
        r"seeking back and retrying|Seek(?:ing)? to current after exception|failed, seeking"
        r"|retrying the same (?:record|message|offset)|poison (?:pill|message|record)"
        r"|(?:Record)?DeserializationException|Error deserializing key/value"
        r"|can(?:not|'t) (?:map|deserialize|decode|parse) (?:event|message|record)"
        # RabbitMQ's requeue loop: the same message nacked with requeue and delivered again.
        r"|\bredelivered[=: ]+true\b|\brequeue[=: ]+true\b|nack(?:ed|ing)?\b.{0,60}\brequeu",
        re.I,
    ),
    "crash": re.compile(
        r"\bpanic\b|segfault|segmentation fault|core dumped|dumped core|code=dumped|SIGSEGV"
        r"|status=\d+/(?:SEGV|ABRT|BUS)|Traceback|fatal error|\bFATAL\b"
        # A JVM's main thread dying, Node exiting on an unhandled error.
        r"|Exception in thread \"main\"|triggerUncaughtException|UnhandledPromiseRejection",
        re.I,
    ),
    "error": re.compile(r"error|fail|exception|\b(?:crit|emerg)\b|denied", re.I),
}
# How much each tag says about a cause (an error word alone says least).
TAG_WEIGHT = {
    "oom": 3.0,
    "firewall": 3.0,
    "dns": 3.0,
    "tls": 3.0,
    "conntrack": 3.0,
    "mtu": 3.0,
    "ports": 3.0,
    "link": 3.0,
    "nfs": 3.0,
    "disk_failure": 3.0,
    "maintenance": 3.0,
    "listen": 2.5,
    "reboot": 2.5,
    "deploy": 2.0,
    "change": 2.0,
    "disk": 3.0,
    "fs_error": 3.0,
    "lock": 2.5,
    "config": 2.5,
    "crash": 2.5,
    "network": 2.0,
    "resource_limit": 3.0,
    "store_full": 3.0,
    "auth": 3.0,
    "shutdown": 2.0,
    "gc": 2.0,
    "swap": 2.0,
    "clock": 2.0,
    "queue": 1.5,
    "slow_query": 2.0,
    "database": 3.0,
    "rate_limit": 2.5,
    "job": 2.5,
    "consumer": 2.0,
    "poison": 2.5,
    "failover": 2.5,
    "error": 1.5,
}
_KERNEL = re.compile(r"\bkernel(?::|\[\d*\]:)")
MAX_EXAMPLE_CHARS = 240


@dataclass(frozen=True)
class LogLine:
    ts: float  # unix seconds
    line: str
    recent: bool  # in the window just before (and after) startsAt
    # A job alert's last-run line read hours back: "old" (before the baseline) or "base" (in
    # it); such lines count as recent, unless they are a periodic line's history.
    lookback: str = ""
    # Unix seconds from which its stream's baseline was read completely (0: the whole
    # baseline). A chatty stream whose read hit its line limit covers less of it; a quiet
    # stream read beside it keeps its own, longer baseline.
    since: float = 0.0


# Listening on every address (`:9100`, `0.0.0.0:9100`, `[::]:9100`, `*:80`) is how a healthy
# start-up reads; only a loopback or specific address, or a failure to bind, says anything.
_ALL_ADDRESSES = re.compile(r"(?:0\.0\.0\.0|\[::\]|\*|(?<![\w.\]]))(?::|port )\d{2,5}\b")
_BIND_FAILED = re.compile(r"in use|cannot|can't|fail|error|unable|denied|not available", re.I)


# A field or phrase that says nothing failed: `errors=0`, `"error":null`, `err=<nil>`,
# `0 failed`, `no errors`. Healthy summaries carry them; they are not error lines.
_NO_ERROR = re.compile(
    r"(?i)\b(?:errors?|err|failures?|failed|exceptions?)(?:_count|_total)?\"?\s*[=:]\s*"
    r"(?:\"\"|\[\]|\"?(?:0|null|nil|none|false|<nil>)(?![\w.])\"?)"
    r"|\b(?:0|no|zero|without) (?:errors?|failures?|exceptions?|failed)\b"
)


def tags_of(line: str) -> list[str]:
    healthy = _NO_ERROR.sub(" ", line)
    found = [
        tag for tag, pattern in TAGS.items() if pattern.search(healthy if tag == "error" else line)
    ]
    if "listen" in found and _ALL_ADDRESSES.search(line) and not _BIND_FAILED.search(line):
        found.remove("listen")
    if _KERNEL.search(line):
        found.append("kernel")
    return found


# Logged before the alert at least this often, at no more than this times the earlier pace:
# background (scanners blocked by the firewall, a user called "deploy", AppArmor denials).
BACKGROUND_MIN_BASELINE = 2
BACKGROUND_MAX_RATIO = 1.5
# ... or more often, but by an amount this likely at the baseline's own pace.
BACKGROUND_MIN_CHANCE = 0.05


def is_background(template: LogTemplate) -> bool:
    """A template logged before the alert as often as during it: not news."""
    return _background(
        template.novelty, template.baseline_count, template.rate_ratio, template.count
    )


def _background(novelty: str, baseline_count: int, rate_ratio: float | None, count: int) -> bool:
    if novelty != "steady" or baseline_count < BACKGROUND_MIN_BASELINE or rate_ratio is None:
        return False
    if rate_ratio <= BACKGROUND_MAX_RATIO:
        return True
    # A rare periodic line (an hourly cron, a denial every 50 minutes) seen once or twice in a
    # short window has a high ratio by chance: background unless its count is unlikely at the
    # baseline's pace (Poisson tail).
    expected = count / rate_ratio
    return _poisson_at_least(count, expected) >= BACKGROUND_MIN_CHANCE


def _poisson_at_least(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term = math.exp(-mean)
    below = term
    for i in range(1, k):
        term *= mean / i
        below += term
    return max(0.0, 1.0 - below)


# A template read this often, over this long, by a job alert's last-run read recurs all day:
# more than one run's failure (a run lasts minutes, a daily job fails once a day).
PERIODIC_LOOKBACK_LINES = 3
PERIODIC_LOOKBACK_SPAN = 3600.0


def _periodic_history(members: list[LogLine], text: str) -> bool:
    """Lines read back for a job alert that recur all day and are no job's failure."""
    back = [m.ts for m in members if m.lookback]
    return (
        len(back) >= PERIODIC_LOOKBACK_LINES
        and max(back) - min(back) >= PERIODIC_LOOKBACK_SPAN
        and "job" not in tags_of(text)
    )


def rank(lines: list[LogLine], recent_seconds: float, baseline_seconds: float) -> list[LogTemplate]:
    """Templates with recent lines, best first."""
    return rank_with_lines(lines, recent_seconds, baseline_seconds)[0]


def rank_with_lines(
    lines: list[LogLine],
    recent_seconds: float,
    baseline_seconds: float,
    baseline_end: float | None = None,
) -> tuple[list[LogTemplate], list[list[LogLine]]]:
    """Templates with recent lines, best first, and the recent lines of each template that is
    not background.

    A background template's words weigh half and its level nothing: a firewall block logged
    every ten minutes all day must not rank above the line that is new before the alert.
    """
    miner = TemplateMiner()
    # Stack frames say nothing alone (the exception line or "Caused by:" does); a multi-line
    # exception or a JSON entry is mined as one readable line that keeps its cause.
    ordered = sorted((ln for ln in lines if not is_frame(ln.line)), key=lambda item: item.ts)
    texts = [condense(item.line) for item in ordered]
    for text in texts:
        miner.add(text)
    baseline_had_lines = any(not item.recent for item in ordered)
    ranked: list[LogTemplate] = []
    telling: list[list[LogLine]] = []
    for template in miner.templates:
        members = [ordered[i] for i in template.lines]
        kept = [i for i in template.lines if ordered[i].recent]
        base_count = len(members) - len(kept)
        if _periodic_history(members, texts[template.lines[0]]):
            # An hourly denial or scanner line the last-run filter caught: its lines in the
            # baseline are baseline, the older ones history, none a last run's failure.
            kept = [i for i in kept if not ordered[i].lookback]
            base_count += sum(1 for m in members if m.lookback == "base")
        recent = [ordered[i] for i in kept]
        said = [texts[i] for i in kept]
        if not recent:
            continue
        recent_rate = len(recent) / max(recent_seconds, 1.0)
        # The template's baseline is what its streams' reads covered (``LogLine.since``).
        since = max((m.since for m in members), default=0.0)
        covered = baseline_seconds
        if baseline_end is not None and since:
            covered = min(baseline_seconds, max(0.0, baseline_end - since))
        base_rate = base_count / max(covered, 1.0)
        if base_count == 0:
            novelty = "new" if baseline_had_lines else "steady"
        elif recent_rate > 3 * base_rate and len(recent) >= 3:
            novelty = "surging"
        else:
            novelty = "steady"
        example = said[-1].replace("\n", " ").strip()
        # The first and the last line of a template speak for it (tagging is the costly step).
        tags = sorted({*tags_of(said[0]), *tags_of(example)})
        level = level_of(recent[-1].line)
        ratio = round(recent_rate / base_rate, 2) if base_count else None
        quiet = _background(novelty, base_count, ratio, len(recent))
        words = max((TAG_WEIGHT.get(t, 0.0) for t in tags), default=0.0)
        score = {"new": 2.0, "surging": 1.5, "steady": 0.0}[novelty]
        score += words / 2 if quiet else words
        if not quiet:
            score += 1.0 if level in ERROR_LEVELS else 0.0
            score += 0.5 if level == "warn" or "kernel" in tags else 0.0
            telling.append(recent)
        score += 1.0 / (1.0 + math.log1p(len(recent)))  # rarer says more
        earlier = [texts[i] for i in template.lines if not ordered[i].recent]
        variant, variant_of = _changed_value(earlier, said)
        ranked.append(
            LogTemplate(
                template=template.text[:MAX_EXAMPLE_CHARS],
                example=shorten(example, MAX_EXAMPLE_CHARS),
                count=len(recent),
                baseline_count=base_count,
                novelty=novelty,  # type: ignore[arg-type]
                score=round(score, 3),
                first_seen=recent[0].ts,
                last_seen=recent[-1].ts,
                level=level,
                tags=tags,
                rate_ratio=ratio,
                variant=shorten(variant, MAX_EXAMPLE_CHARS),
                variant_of=shorten(variant_of, MAX_EXAMPLE_CHARS),
            )
        )
    ranked.sort(key=lambda t: (-t.score, -t.last_seen))
    return ranked, telling


# Lines a template may have, in each window, for its values to be compared: a configuration
# dump logged at start or reload, not a stream of requests whose ids differ on every line.
MAX_VARIANT_LINES = 12
_CLOCK = re.compile(
    r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"
)


def _changed_value(earlier: list[str], recent: list[str]) -> tuple[str, str]:
    """(a recent line the baseline never had, the baseline line closest to it), when the
    template's other recent lines repeat baseline lines word for word; else ("", "").

    A service that logs its settings at each reload repeats them exactly, but for the one
    that changed (``addr=seatmap-svc:8081`` where it was ``:8080``)."""
    if not 0 < len(earlier) <= MAX_VARIANT_LINES or len(recent) > MAX_VARIANT_LINES:
        return "", ""
    baseline = {_CLOCK.sub("", text): text for text in earlier}
    fresh = [text for text in recent if _CLOCK.sub("", text) not in baseline]
    if not fresh or len(fresh) == len(recent):
        return "", ""
    variant = fresh[-1]
    words = _CLOCK.sub("", variant).split()

    def differing(text: str) -> int:
        other = text.split()
        if len(other) != len(words):
            return len(words) + 1
        return sum(a != b for a, b in zip(words, other, strict=True))

    closest = min(baseline, key=differing)
    return variant, baseline[closest] if differing(closest) <= len(words) else ""
