/*
 * hyperstart/api.h — the host <-> guest protocol, defined once for the guest.
 * The host's mirror is hyperd/agent/protocol.py; change both together and bump
 * HYPER_API_VERSION when a payload or a frame changes meaning.
 *
 * Two virtio-serial ports, found under /sys/class/virtio-ports/<port>/name:
 *   sh.hyper.channel.0  control: commands, answers, events
 *   sh.hyper.channel.1  streams: stdio of processes, archive transfers
 *
 * Control frame (big-endian):
 *
 *    0               4               8
 *   +---------------+---------------+-------------------------------+
 *   |   u32 code    |  u32 length   |  payload (length - 8 bytes)   |
 *   +---------------+---------------+-------------------------------+
 *   length counts the 8-byte header. Payloads are JSON objects unless a
 *   command says otherwise. Frames longer than HYPER_MAX_CONTROL_FRAME are
 *   answered ERROR and their payload is skipped, so the stream stays in sync.
 *
 * Stream frame (big-endian):
 *
 *    0                               8               12
 *   +-------------------------------+---------------+-----------------+
 *   |            u64 seq            |  u32 length   | data (len - 12) |
 *   +-------------------------------+---------------+-----------------+
 *   length counts the 12-byte header; a frame with no data is EOF for that
 *   seq (host -> guest: close stdin; guest -> host: output finished).
 *
 * Rules:
 *   - The guest sends READY each time it sees the host connect to the control
 *     port (at boot, and again after a host daemon reconnects).
 *   - Every host command is answered, in order, by exactly one ACK (payload as
 *     the command documents, often empty) or ERROR, whose payload is
 *       {"message": str, "exitCode": N (opt.), "errno": N (opt.)}
 *     exitCode: Docker's code for a process that could not start (127 not
 *     found, 126 cannot execute); errno: the cause, where a command says so.
 *   - PROCESSASYNCEVENT may arrive between answers. For a process, the guest
 *     first sends EOF on its stdout and stderr seqs, then the event:
 *       {"container": ID, "process": ID, "event": "finished", "status": N,
 *        "oomKilled": true (opt.)}
 *     status is the exit code, or 128 + N when killed by signal N. oomKilled
 *     (version 4): the guest kernel's OOM killer killed a process of the
 *     container (this one or another) while this one ran; Docker's
 *     State.OOMKilled for the main process. A process that could not start
 *     (ERROR answered) has no streams and no event.
 *     Archive transfers end the same way, the job id as "process", status 0
 *     or an errno, and "error": text when status is not 0.
 *   - No NEXT flow control: virtio-serial's own back-pressure is used. A guest
 *     that cannot write stops reading process output and archive files
 *     (nothing is dropped); it stops reading the stream port while stdin
 *     piles up. Archive data going in is written to disk as it arrives.
 *   - Events produced while the host is disconnected are kept and sent after
 *     the next READY.
 *
 * Isolation (version 3): each container's processes run in PID, mount, IPC
 * and UTS namespaces of its own. Its main process is PID 1 there (a container
 * created without one gets a holder of the agent's as PID 1); execs join
 * them. The container's root is its only root (pivot_root): the agent, the
 * virtio ports, the raw disks and other containers are out of its view. Its
 * mounts are nodev (its /dev holds null, zero, full, random, urandom, tty,
 * pts, shm only), /sys is read-only and parts of /proc are masked or
 * read-only as in Docker, unless the container is privileged. Each process
 * gets Docker's default capabilities (changed by capAdd/capDrop), the default
 * seccomp filter (see seccomp.h) and no_new_privs if asked (PROCESS below).
 * As in Docker, PID 1 ignores the signals it has no handler for, SIGKILL
 * aside, and when it exits every other process of the container is killed.
 *
 * Memory (version 4): each container's processes are in a cgroup of their own
 * whose memory.max is what the guest had available at NEWCONTAINER less 6 MiB
 * for the agent and the kernel (ONLINECPUMEM raises it with the guest's memory):
 * a container that runs out is OOM-killed within seconds, where a guest out of
 * memory as a whole thrashes for minutes, and the finished events say so.
 */
#ifndef HYPERSTART_API_H
#define HYPERSTART_API_H

#define HYPER_API_VERSION 6

#define HYPER_CONTROL_PORT "sh.hyper.channel.0"
#define HYPER_STREAM_PORT  "sh.hyper.channel.1"

#define HYPER_CONTROL_HEADER_SIZE 8
#define HYPER_STREAM_HEADER_SIZE  12
#define HYPER_MAX_CONTROL_FRAME   (16u * 1024 * 1024)
#define HYPER_MAX_STREAM_FRAME    (64u * 1024 + HYPER_STREAM_HEADER_SIZE)

/*
 * (version 6) The agent's binary run with this as its first argument exits 0 at
 * once. The host's warm-up container runs it as /proc/self/exe: a static program
 * that is always there, so the warm-up execs one (hyperd/sandbox/warmup.py).
 */
#define HYPER_EXIT_ARG "--exit"

/*
 * Command codes. Numbers are never reused: 2, 3, 5, 7 and 13 were retired by
 * the original hyperstart; NEXT (14) is deprecated and answered ERROR.
 */
enum hyper_code {
	/* host -> guest. ACK payload {"version": HYPER_API_VERSION} */
	HYPER_GETVERSION = 0,
	/*
	 * {"hostname": str, "dns": [str], "dnsSearch": [str],
	 *  "time": N (opt.), "seed": str (opt.)} -> ACK
	 * (version 5) "time": the host's wall clock, integer nanoseconds since the
	 * Unix epoch, set as CLOCK_REALTIME; "seed": random bytes from the host as
	 * hex (even length, at most 512 hex chars), credited to the kernel's pool
	 * and the CRNG reseeded at once. A guest restored from a template wakes with
	 * the template's clock and CRNG state, so the host sends both to every pod.
	 */
	HYPER_STARTPOD = 1,
	/* {} -> ACK, then every process is killed, disks synced, power off */
	HYPER_DESTROYPOD = 4,
	/*
	 * {"container": ID, "process": PROCESS} -> ACK once the program has been
	 * exec'd; ERROR (with exitCode) when it, or a step before it, failed
	 */
	HYPER_EXECCMD = 6,
	/* guest -> host, empty payload */
	HYPER_READY = 8,
	HYPER_ACK = 9,
	HYPER_ERROR = 10,
	/* {"container": ID, "process": ID, "row": N, "column": N} -> ACK */
	HYPER_WINSIZE = 11,
	/* {} -> ACK */
	HYPER_PING = 12,
	/* deprecated: answered ERROR */
	HYPER_NEXT = 14,
	/*
	 * payload: JSON object {"container": ID, "path": str, "mode": N (opt.)}
	 * immediately followed by the raw file bytes -> ACK. The file is written
	 * inside the container's root (or the guest's own when container is "").
	 */
	HYPER_WRITEFILE = 15,
	/* {"container": ID, "path": str} -> ACK whose payload is the raw bytes */
	HYPER_READFILE = 16,
	/*
	 * NEWCONTAINER -> ACK once everything is mounted and (if given) the
	 * process has been exec'd; on ERROR nothing of the container is left. {
	 *   "id": ID,
	 *   "mounts": [MOUNT, ...],  the root ("/" entries) and the volumes
	 *   "readOnly": bool,        root remounted read-only once the agent
	 *                            wrote /etc/hosts, /etc/hostname, resolv.conf
	 *   "process": PROCESS       optional: the container's main process
	 *   "sysctl": {key: value}   optional, written under /proc/sys
	 *   "privileged": bool       optional: mounts not nodev, /sys writable,
	 *                            nothing of /proc masked (Docker's --privileged)
	 * }
	 */
	HYPER_NEWCONTAINER = 17,
	/* {"container": ID, "signal": N} -> ACK; signals the main process */
	HYPER_KILLCONTAINER = 18,
	/*
	 * {} -> ACK after every offline CPU and memory block is brought online
	 * and each container's memory.max is computed again
	 */
	HYPER_ONLINECPUMEM = 19,
	/*
	 * {"device": "eth0" | MAC "aa:bb:..", "newName": str (opt.),
	 *  "ipAddresses": [{"ipAddress": "10.1.2.3", "netMask": "24"}],
	 *  "mtu": N (opt.)} -> ACK; the link is brought up
	 */
	HYPER_SETUPINTERFACE = 20,
	/* {"routes": [{"dest": "default"|"a.b.c.d/n", "gateway": str (opt.),
	 *              "device": str}]} -> ACK */
	HYPER_SETUPROUTE = 21,
	/* {"container": ID} -> ACK; kills what is left, unmounts, forgets it */
	HYPER_REMOVECONTAINER = 22,
	/* guest -> host, see the rules above */
	HYPER_PROCESSASYNCEVENT = 23,
	/* {"container": ID, "process": ID, "signal": N} -> ACK */
	HYPER_SIGNALPROCESS = 24,
	/* {"device": "eth0" | MAC} -> ACK; addresses flushed, link down */
	HYPER_DELETEINTERFACE = 25,
	/*
	 * {"container": ID} -> ACK {"processes": [{"pid", "ppid", "uid", "gid",
	 *   "state": "S", "tty": "pts/0" | "", "startTime": unix s (float),
	 *   "cpuTime": ms, "rss": bytes, "vsz": bytes, "args": [str]}]}
	 * the processes whose root is the container's (never the agent's own)
	 */
	HYPER_PS = 26,
	/* {} -> ACK after sync(); {"container": ID} -> after syncfs of its mounts */
	HYPER_SYNC = 27,
	/*
	 * {"container": ID, "path": str} -> ACK STAT, path resolved in the root:
	 * STAT = {"name": basename, "size": N, "mode": st_mode, "mtime": unix s
	 *         (float), "linkTarget": resolved path in the container | ""}
	 * (lstat: a final symlink is described, linkTarget is where it leads).
	 * Missing: ERROR "... no such file or directory" with "errno": 2.
	 */
	HYPER_STATPATH = 28,
	/*
	 * {"container": ID, "id": JOB, "path": str, "seq": u64, "changes": bool}
	 * -> ACK STAT of path; then a tar on seq (guest -> host), EOF, and the
	 * finished event of JOB. The tar is Docker's GET /containers/{id}/archive:
	 * entries under basename(path) ("." for "/"), ustar with PAX headers for
	 * long names, big ids and xattrs; the contents of proc, sysfs and devpts
	 * mounts are left out. "changes": the overlay upper directory as an OCI
	 * layer instead (path ignored, names relative to the root): whiteouts as
	 * ".wh.NAME", opaque directories with "DIR/.wh..wh..opq", no
	 * trusted.overlay.* xattrs, a socket as an empty regular entry with the
	 * PAX record "HYPER.socket=1" (other archives leave sockets out).
	 */
	HYPER_ARCHIVEOUT = 29,
	/*
	 * {"container": ID, "id": JOB, "path": str, "seq": u64,
	 *  "noOverwriteDirNonDir": bool} -> ACK once path is an existing directory;
	 * then the host sends a tar on seq and EOF; the guest extracts it under
	 * path and sends the finished event of JOB (at the first error, at once).
	 * Names are taken relative to path; ".." components, and entries that
	 * resolve outside path (through symlinks, which resolve inside the root),
	 * are refused.
	 */
	HYPER_ARCHIVEIN = 30,
	/*
	 * {"container": ID, "frozen": bool} -> ACK once every process of the
	 * container (those whose root is its root) got SIGSTOP (frozen) or
	 * SIGCONT; a commit copies the layer of changes of a frozen container
	 */
	HYPER_FREEZE = 31,
};

/*
 * MOUNT object, used by NEWCONTAINER:
 * {
 *   "type": "block" | "9p" | "tmpfs",
 *   "source": str,       block: virtio-blk serial (waited for when hot-plugged);
 *                        9p: the mount tag (trans=virtio,version=9p2000.L
 *                        added); tmpfs: ignored
 *   "fstype": str,       default: ext4 (block), 9p, tmpfs
 *   "target": str,       absolute path in the container
 *   "options": str,      "size=64m,mode=1777,noexec": generic words (ro,
 *                        nosuid, nodev, noexec, relatime, ...) become mount
 *                        flags, the rest goes to the filesystem
 *   "readonly": bool,
 *   "layer": "lower" | "upper",  only with target "/": the image layers (read
 *                        only, first = topmost; at least one) and the writable
 *                        layer (its upper/ and work/ dirs; a tmpfs if absent)
 *   "populate": bool     if the new filesystem is empty (lost+found aside),
 *                        first copy what the root has at target into it
 * }
 * Volumes are mounted in list order after the root and /proc, /sys, /dev,
 * /dev/pts, /dev/shm; the target is created if missing and resolved inside the
 * root. An error names the mount and undoes every mount of the container.
 */


/*
 * PROCESS object, used by NEWCONTAINER and EXECCMD:
 * {
 *   "id": str,                  unique within the container
 *   "args": [str, ...],         argv; args[0] searched in PATH when it has no '/'
 *   "envs": [{"env": K, "value": V}, ...],
 *   "workdir": str,             default "/"; created if missing
 *   "user": str,                name or uid (or "user:group"), resolved in the container's
 *   "group": str,               /etc/passwd and /etc/group; default root
 *   "additionalGroups": [str],
 *   "terminal": bool,           a pty: stdin and output both on "stdio"
 *   "row": N, "column": N,      initial terminal size (terminal only)
 *   "stdio": u64,               seq of stdin (host->guest) and stdout
 *   "stderr": u64,              seq of stderr (ignored with a terminal)
 *                               a seq of 0 (pipes) means /dev/null
 *   "rlimits": [{"type": "RLIMIT_NOFILE", "soft": N, "hard": N}],
 *   "capAdd": [str], "capDrop": [str],   capability names ("NET_ADMIN" or
 *                               "CAP_NET_ADMIN", any case, or "ALL") changing
 *                               Docker's default set as Docker does: ALL in
 *                               capAdd wins, then ALL in capDrop, else
 *                               default - capDrop + capAdd
 *   "privileged": bool,         every capability, no seccomp filter
 *   "noNewPrivileges": bool,    no_new_privs (setuid and file caps give nothing)
 *   "seccomp": bool             the default filter (default true)
 * }
 * A program that cannot be found (127) or executed (126) is answered ERROR
 * with that exitCode and Docker's text, e.g.
 *   exec: "nosuch": executable file not found in $PATH
 * HOME (from passwd) and PATH are set when absent from envs.
 */

#endif /* HYPERSTART_API_H */
