/*
 * chatd's configuration: the key table, the value parsers, loading a file
 * or string with inih, and the -T dump.
 *
 * Owns: cfg_keys[], the one list of every setting. Defaults, parsing,
 * range checks, error messages, ch_config_dump and ch_config_keys are all
 * driven by it; adding a setting means adding a row (and a struct field,
 * and its entries in conf/chatd.conf and man/chatd.conf.5, which the unit
 * test checks against this table).
 *
 * Invariants:
 *  - A load parses into a private copy that starts from the defaults and
 *    is copied out only when the whole file was valid, so a bad file
 *    (a reload with a typo) never changes the running settings.
 *  - No state survives between loads: everything a load needs lives in a
 *    struct cfg_parse on its stack. The only static data is the constant
 *    table and the key-name list built from it once.
 *  - Only the first error is reported; reading stops there.
 *
 * inih is used for splitting lines into [section] and key = value. Debian
 * builds it with multi-line values on (an indented line continues the
 * previous key) and makes the comment options run-time globals that any
 * code in the process could change. So our line reader hands inih lines
 * already cleaned: leading blanks and full-line and " ;" inline comments
 * removed. inih then behaves the same whatever those globals say, the
 * "continuation line" case cannot arise, and we know each line's number.
 */
#include "master/config.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

enum cfg_type {
	CFG_STRING,	/* char[] field: any non-empty text */
	CFG_PATH,	/* char[] field: a file or directory path */
	CFG_INT,	/* int field: min..max, or "auto" with CFG_AUTO */
	CFG_SIZE,	/* uint64_t field: bytes, K/M/G suffix (1024-based) */
	CFG_DURATION,	/* uint32_t field: milliseconds; ms/s/m/h suffix */
	CFG_ENUM,	/* int field: index into choices */
	CFG_BOOL,	/* int field: 0 or 1 */
	CFG_LISTEN,	/* struct ch_listen_addr[] field, int count at aux */
};

enum cfg_flags {
	CFG_REPEAT = 1 << 0,	/* may be given on several lines */
	CFG_AUTO = 1 << 1,	/* int that also takes "auto"; int flag at aux */
	CFG_EMPTY = 1 << 2,	/* string or path that may be empty */
};

struct cfg_key {
	const char *section;
	const char *name;
	const char *key;	/* "section.name", for ch_config_keys */
	enum cfg_type type;
	unsigned flags;
	int64_t min, max;	/* int, size (bytes), duration (ms) */
	const char *const *choices;	/* enum: names by value, NULL-ended */
	const char *def;	/* default, as it would be written in the file */
	size_t off;		/* the field in struct ch_config */
	size_t size;		/* sizeof the field (char[] capacity) */
	size_t aux;		/* CFG_AUTO: int flag; CFG_LISTEN: int count */
	const char *help;	/* one line, for the dump */
	/* Extra rule beyond the range, checked after the value is set. */
	int (*check)(const struct ch_config *c, char *why, size_t whylen);
};

#define CFG_KEY(s, n) .section = s, .name = n, .key = s "." n

/*
 * Field offsets checked against the member's type at compile time: a row
 * that points an int parser at a uint32_t field does not build.
 */
#define CFG_FIELD(m, T) \
	.off = _Generic(((struct ch_config *)0)->m, T: offsetof(struct ch_config, m)), \
	.size = sizeof(((struct ch_config *)0)->m)
#define CFG_AUX(m) \
	.aux = _Generic(((struct ch_config *)0)->m, int: offsetof(struct ch_config, m))

#define CFG_MS_PER_S 1000LL
#define CFG_MS_PER_M (60 * CFG_MS_PER_S)
#define CFG_MS_PER_H (60 * CFG_MS_PER_M)
#define CFG_KIB 1024LL
#define CFG_MIB (1024 * CFG_KIB)
#define CFG_GIB (1024 * CFG_MIB)
#define CFG_MAX_CONNECTIONS 1000000
#define CFG_PORT_MAX 65535

static int cfg_check_ring_slots(const struct ch_config *c, char *why, size_t whylen)
{
	if (c->ring_slots & (c->ring_slots - 1)) {
		snprintf(why, whylen, "ring_slots = %d is not a power of two", c->ring_slots);
		return -1;
	}
	return 0;
}

static int cfg_check_slot_size(const struct ch_config *c, char *why, size_t whylen)
{
	if (c->ring_slot_size % 8) {
		snprintf(why, whylen, "ring_slot_size = %d is not a multiple of 8",
			 c->ring_slot_size);
		return -1;
	}
	return 0;
}

static const char *const cfg_ack_modes[] = {
	[CH_ACK_WRITE] = "write",
	[CH_ACK_FSYNC] = "fsync",
	[CH_ACK_REPLICA] = "replica",
	NULL
};

static const char *const cfg_repl_roles[] = {
	[CH_ROLE_PRIMARY] = "primary",
	[CH_ROLE_STANDBY] = "standby",
	NULL
};

/* An address of [replication]: empty (none) or host:port as for listen. */
static int cfg_check_repl_addr(const char *name, const char *v, char *why, size_t whylen)
{
	struct ch_listen_addr a;
	char reason[CH_CONFIG_ERR_MAX / 2];

	if (!v[0] || ch_config_parse_listen(v, &a, reason, sizeof(reason)) == 0)
		return 0;
	snprintf(why, whylen, "%s: %s", name, reason);
	return -1;
}

static int cfg_check_repl_listen(const struct ch_config *c, char *why, size_t whylen)
{
	return cfg_check_repl_addr("listen", c->repl_listen, why, whylen);
}

static int cfg_check_repl_primary(const struct ch_config *c, char *why, size_t whylen)
{
	return cfg_check_repl_addr("primary", c->repl_primary, why, whylen);
}

static const char *const cfg_upload_backends[] = {
	[CH_UPLOAD_LOCAL] = "local",
	[CH_UPLOAD_S3] = "s3",
	NULL
};

static const char *const cfg_s3_styles[] = {
	[CH_S3_PATH] = "path",
	[CH_S3_VIRTUAL] = "virtual",
	NULL
};

static const char *const cfg_s3_protocols[] = {
	[CH_S3_HTTP] = "http",
	[CH_S3_HTTPS] = "https",
	NULL
};

static const char *const cfg_hash_methods[] = {
	[CH_HASH_YESCRYPT] = "yescrypt",
	[CH_HASH_BCRYPT] = "bcrypt",
	NULL
};

static const char *const cfg_log_levels[] = {
	[CH_LOG_ERROR] = "error",
	[CH_LOG_WARN] = "warn",
	[CH_LOG_INFO] = "info",
	[CH_LOG_DEBUG] = "debug",
	NULL
};

static const struct cfg_key cfg_keys[] = {
	{ CFG_KEY("server", "listen"), .type = CFG_LISTEN, .flags = CFG_REPEAT,
	  .def = "127.0.0.1:8080",
	  CFG_FIELD(listen, struct ch_listen_addr *), CFG_AUX(n_listen),
	  .help = "Address clients connect to, host:port; repeat the line for more." },
	{ CFG_KEY("server", "workers"), .type = CFG_INT, .flags = CFG_AUTO,
	  .min = 1, .max = CH_MAX_WORKERS, .def = "auto",
	  CFG_FIELD(workers, int), CFG_AUX(workers_auto),
	  .help = "Worker processes; auto starts one per online CPU." },
	{ CFG_KEY("server", "data_dir"), .type = CFG_PATH, .def = "./var",
	  CFG_FIELD(data_dir, char *),
	  .help = "Directory for the journal, keys and local files." },
	{ CFG_KEY("server", "web_root"), .type = CFG_PATH, .def = "./www",
	  CFG_FIELD(web_root, char *),
	  .help = "Directory of the web UI served at /." },
	{ CFG_KEY("server", "max_connections"), .type = CFG_INT,
	  .min = 1, .max = CFG_MAX_CONNECTIONS, .def = "10000",
	  CFG_FIELD(max_connections, int),
	  .help = "Open client connections per worker; newer ones are refused." },
	{ CFG_KEY("server", "header_timeout"), .type = CFG_DURATION,
	  .min = 100, .max = CFG_MS_PER_H, .def = "10s",
	  CFG_FIELD(header_timeout_ms, uint32_t),
	  .help = "Time a client has to send a complete request head." },
	{ CFG_KEY("server", "idle_timeout"), .type = CFG_DURATION,
	  .min = CFG_MS_PER_S, .max = 24 * CFG_MS_PER_H, .def = "60s",
	  CFG_FIELD(idle_timeout_ms, uint32_t),
	  .help = "Keep-alive connections with no request for this long are closed." },
	{ CFG_KEY("server", "shutdown_timeout"), .type = CFG_DURATION,
	  .min = 0, .max = CFG_MS_PER_H, .def = "10s",
	  CFG_FIELD(shutdown_timeout_ms, uint32_t),
	  .help = "On SIGTERM, time given to requests in progress before exit." },
	{ CFG_KEY("server", "away_after"), .type = CFG_DURATION,
	  .min = CFG_MS_PER_S, .max = 24 * CFG_MS_PER_H, .def = "5m",
	  CFG_FIELD(away_after_ms, uint32_t),
	  .help = "A user whose WebSocket connections sent nothing this long shows as away." },
	{ CFG_KEY("server", "max_body_size"), .type = CFG_SIZE,
	  .min = CFG_KIB, .max = CFG_GIB, .def = "1M",
	  CFG_FIELD(max_body_size, uint64_t),
	  .help = "Largest request body accepted (uploads have their own limit)." },
	{ CFG_KEY("server", "log_level"), .type = CFG_ENUM,
	  .choices = cfg_log_levels, .def = "info",
	  CFG_FIELD(log_level, int),
	  .help = "Least severe messages logged to stderr." },
	{ CFG_KEY("server", "access_log"), .type = CFG_PATH, .def = "off",
	  CFG_FIELD(access_log, char *),
	  .help = "One line per request: off, stderr, or a file path." },

	{ CFG_KEY("admin", "socket"), .type = CFG_PATH, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(admin_socket, char *),
	  .help = "chatadm's Unix socket (mode 0660); empty: <data_dir>/chatd.sock." },

	{ CFG_KEY("journal", "ack"), .type = CFG_ENUM,
	  .choices = cfg_ack_modes, .def = "write",
	  CFG_FIELD(ack, int),
	  .help = "When a send is acked: write (in the log), fsync (on disk) or replica." },
	{ CFG_KEY("journal", "segment_size"), .type = CFG_SIZE,
	  .min = 64 * CFG_KIB, .max = 4 * CFG_GIB, .def = "64M",
	  CFG_FIELD(segment_size, uint64_t),
	  .help = "Log segment files are rolled at this size." },
	{ CFG_KEY("journal", "room_rings"), .type = CFG_INT,
	  .min = 16, .max = 65536, .def = "1024",
	  CFG_FIELD(room_rings, int),
	  .help = "Shared-memory rings for live room delivery; idle rooms give theirs up." },
	{ CFG_KEY("journal", "ring_slots"), .type = CFG_INT,
	  .min = 16, .max = 65536, .def = "1024",
	  CFG_FIELD(ring_slots, int), .check = cfg_check_ring_slots,
	  .help = "Slots per room ring, a power of two." },
	{ CFG_KEY("journal", "ring_slot_size"), .type = CFG_INT,
	  .min = 64, .max = 65536, .def = "256",
	  CFG_FIELD(ring_slot_size, int), .check = cfg_check_slot_size,
	  .help = "Bytes per ring slot, a multiple of 8; a message may span slots." },

	{ CFG_KEY("replication", "role"), .type = CFG_ENUM,
	  .choices = cfg_repl_roles, .def = "primary",
	  CFG_FIELD(repl_role, int),
	  .help = "Role at start: primary (takes writes) or standby (follows primary)." },
	{ CFG_KEY("replication", "listen"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(repl_listen, char *), .check = cfg_check_repl_listen,
	  .help = "host:port where standbys connect while primary; empty: none." },
	{ CFG_KEY("replication", "primary"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(repl_primary, char *), .check = cfg_check_repl_primary,
	  .help = "host:port of the peer's replication listener; a standby follows it." },
	{ CFG_KEY("replication", "secret_file"), .type = CFG_PATH, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(repl_secret_file, char *),
	  .help = "Shared secret for the HMAC challenge both ways; empty: no check." },
	{ CFG_KEY("replication", "ack_timeout"), .type = CFG_DURATION,
	  .min = 100, .max = 9 * CFG_MS_PER_S, .def = "5s",
	  CFG_FIELD(repl_ack_timeout_ms, uint32_t),
	  .help = "ack = replica: how long a send waits for the standby before failing." },

	{ CFG_KEY("auth", "key_file"), .type = CFG_PATH, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(key_file, char *),
	  .help = "Token signing key (created, mode 0600); empty: <data_dir>/jwt.key." },
	{ CFG_KEY("auth", "token_lifetime"), .type = CFG_DURATION,
	  .min = CFG_MS_PER_M, .max = 30 * 24 * CFG_MS_PER_H, .def = "24h",
	  CFG_FIELD(token_lifetime_ms, uint32_t),
	  .help = "How long a login token is valid." },
	{ CFG_KEY("auth", "hash_method"), .type = CFG_ENUM,
	  .choices = cfg_hash_methods, .def = "yescrypt",
	  CFG_FIELD(hash_method, int),
	  .help = "Password hashing method; weaker stored hashes upgrade at login." },
	{ CFG_KEY("auth", "hash_cost"), .type = CFG_INT,
	  .min = 0, .max = 31, .def = "0",
	  CFG_FIELD(hash_cost, int),
	  .help = "Hashing cost; 0 is the library's default for the method." },
	{ CFG_KEY("auth", "hash_threads"), .type = CFG_INT,
	  .min = 1, .max = 64, .def = "2",
	  CFG_FIELD(hash_threads, int),
	  .help = "Hashing threads per worker (each yescrypt hash takes ~16 MiB)." },

	{ CFG_KEY("limits", "auth_per_ip_per_minute"), .type = CFG_INT,
	  .min = 0, .max = 1000000, .def = "120",
	  CFG_FIELD(auth_per_ip_per_minute, int),
	  .help = "Register and login attempts from one address per minute; 0: no limit." },
	{ CFG_KEY("limits", "auth_failures_per_user_per_minute"), .type = CFG_INT,
	  .min = 0, .max = 1000000, .def = "10",
	  CFG_FIELD(auth_failures_per_user_per_minute, int),
	  .help = "Failed logins for one account per minute; 0: no limit." },
	{ CFG_KEY("limits", "max_message_bytes"), .type = CFG_SIZE,
	  .min = 1, .max = 512 * CFG_KIB, .def = "65536",
	  CFG_FIELD(max_message_bytes, uint64_t),
	  .help = "Largest message content, in bytes." },
	{ CFG_KEY("limits", "max_rooms_per_user"), .type = CFG_INT,
	  .min = 1, .max = 1000000, .def = "1000",
	  CFG_FIELD(max_rooms_per_user, int),
	  .help = "Rooms one user may create." },
	{ CFG_KEY("limits", "max_participants"), .type = CFG_INT,
	  .min = 2, .max = 100000, .def = "1000",
	  CFG_FIELD(max_participants, int),
	  .help = "Participants in one room." },

	{ CFG_KEY("uploads", "backend"), .type = CFG_ENUM,
	  .choices = cfg_upload_backends, .def = "local",
	  CFG_FIELD(upload_backend, int),
	  .help = "Where uploaded files go: local (upload_dir) or s3 ([s3])." },
	{ CFG_KEY("uploads", "dir"), .type = CFG_PATH, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(upload_dir, char *),
	  .help = "Local files (and S3 spool); empty: <data_dir>/files." },
	{ CFG_KEY("uploads", "max_size"), .type = CFG_SIZE,
	  .min = CFG_KIB, .max = 4095 * CFG_MIB, .def = "25M",
	  CFG_FIELD(upload_max_size, uint64_t),
	  .help = "Largest uploaded file; larger uploads get 413." },
	{ CFG_KEY("uploads", "url_expiry"), .type = CFG_DURATION,
	  .min = CFG_MS_PER_M, .max = 30 * 24 * CFG_MS_PER_H, .def = "168h",
	  CFG_FIELD(upload_url_expiry_ms, uint32_t),
	  .help = "Life of the signed (local) or presigned (S3) URL of an upload." },

	{ CFG_KEY("s3", "endpoint"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_endpoint, char *),
	  .help = "host[:port] of the S3-compatible service." },
	{ CFG_KEY("s3", "bucket"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_bucket, char *),
	  .help = "Bucket the files go to." },
	{ CFG_KEY("s3", "region"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_region, char *),
	  .help = "Location constraint when the bucket is created; empty: the default." },
	{ CFG_KEY("s3", "access_key"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_access_key, char *),
	  .help = "Access key id." },
	{ CFG_KEY("s3", "secret_key_file"), .type = CFG_PATH, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_secret_key_file, char *),
	  .help = "File holding the secret access key (first line)." },
	{ CFG_KEY("s3", "style"), .type = CFG_ENUM,
	  .choices = cfg_s3_styles, .def = "path",
	  CFG_FIELD(s3_style, int),
	  .help = "path (endpoint/bucket/key) or virtual (bucket.endpoint/key)." },
	{ CFG_KEY("s3", "protocol"), .type = CFG_ENUM,
	  .choices = cfg_s3_protocols, .def = "https",
	  CFG_FIELD(s3_protocol, int),
	  .help = "http or https." },
	{ CFG_KEY("s3", "public_url"), .type = CFG_STRING, .flags = CFG_EMPTY, .def = "",
	  CFG_FIELD(s3_public_url, char *),
	  .help = "Base URL of a public bucket; empty: presigned URLs." },
	{ CFG_KEY("s3", "create_bucket"), .type = CFG_BOOL, .def = "off",
	  CFG_FIELD(s3_create_bucket, int),
	  .help = "Create the bucket when it is missing." },
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

#define CFG_AT(c, off, T) ((T *)(void *)((char *)(c) + (off)))
#define CFG_CAT(c, off, T) ((const T *)(const void *)((const char *)(c) + (off)))

/* ------------------------------------------------------------------ */
/* Value parsers                                                       */
/* ------------------------------------------------------------------ */

/*
 * Unsigned decimal digits, then the rest in *end. Too large a number
 * saturates, so the caller's range check reports it as out of range.
 */
static int cfg_parse_u64(const char *s, uint64_t *out, const char **end)
{
	uint64_t n = 0;
	int saturated = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			saturated = 1;
		else
			n = n * 10 + d;
	}
	*out = saturated ? UINT64_MAX : n;
	*end = s;
	return 0;
}

static uint64_t cfg_mul_sat(uint64_t n, uint64_t unit)
{
	return n > UINT64_MAX / unit ? UINT64_MAX : n * unit;
}

int ch_config_parse_size(const char *s, uint64_t *bytes)
{
	const char *end;
	uint64_t n, unit = 1;

	if (cfg_parse_u64(s, &n, &end) != 0)
		return -1;
	if (*end != '\0') {
		switch (*end) {
		case 'k': case 'K': unit = CFG_KIB; break;
		case 'm': case 'M': unit = CFG_MIB; break;
		case 'g': case 'G': unit = CFG_GIB; break;
		default: return -1;
		}
		if (end[1] != '\0')
			return -1;
	}
	*bytes = cfg_mul_sat(n, unit);
	return 0;
}

int ch_config_parse_duration(const char *s, uint64_t *ms)
{
	static const struct { const char *suffix; uint64_t ms; } units[] = {
		{ "", CFG_MS_PER_S }, { "ms", 1 }, { "s", CFG_MS_PER_S },
		{ "m", CFG_MS_PER_M }, { "h", CFG_MS_PER_H },
	};
	const char *end;
	uint64_t n;

	if (cfg_parse_u64(s, &n, &end) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			*ms = cfg_mul_sat(n, units[i].ms);
			return 0;
		}
	}
	return -1;
}

int ch_config_parse_bool(const char *s, int *on)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*on = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*on = 0;
			return 0;
		}
	}
	return -1;
}

static int cfg_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Write the reason into why (if any) and return -1, for "return cfg_why()". */
static int cfg_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int cfg_parse_port(const char *s, uint16_t *port, char *why, size_t whylen)
{
	const char *end;
	uint64_t n;

	if (*s == '\0')
		return cfg_why(why, whylen, "missing port after ':'");
	if (cfg_parse_u64(s, &n, &end) != 0 || *end != '\0')
		return cfg_why(why, whylen, "port '%s' is not a number", s);
	if (n < 1 || n > CFG_PORT_MAX)
		return cfg_why(why, whylen, "port %s is out of range (1 to %d)",
			       s, CFG_PORT_MAX);
	*port = (uint16_t)n;
	return 0;
}

/* "[v6]:port": the host between the brackets, the port after "]:". */
static int cfg_parse_listen6(char *s, struct ch_listen_addr *out, char *why, size_t whylen)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
	char *close = strchr(s, ']');
	uint16_t port;

	if (close == NULL)
		return cfg_why(why, whylen, "missing ']' after the IPv6 address");
	*close = '\0';
	if (close[1] != ':')
		return cfg_why(why, whylen, "missing ':port' after [%s]", s + 1);
	if (cfg_parse_port(close + 2, &port, why, whylen) != 0)
		return -1;
	if (inet_pton(AF_INET6, s + 1, &sin6->sin6_addr) != 1)
		return cfg_why(why, whylen, "'%s' is not an IPv6 address", s + 1);
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	out->addrlen = sizeof(*sin6);
	return 0;
}

static int cfg_parse_listen4(char *s, struct ch_listen_addr *out, char *why, size_t whylen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
	char *colon = strchr(s, ':');
	uint16_t port;

	if (colon == NULL)
		return cfg_why(why, whylen, "missing ':port'");
	if (strchr(colon + 1, ':') != NULL)
		return cfg_why(why, whylen, "an IPv6 address goes in brackets, as in [::1]:8080");
	*colon = '\0';
	if (*s == '\0')
		return cfg_why(why, whylen, "missing host before ':' (use *:port for all addresses)");
	if (cfg_parse_port(colon + 1, &port, why, whylen) != 0)
		return -1;
	if (strcmp(s, "*") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, s, &sin->sin_addr) != 1)
		return cfg_why(why, whylen,
			       "'%s' is not an IPv4 address (names are not looked up)", s);
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	out->addrlen = sizeof(*sin);
	return 0;
}

int ch_config_parse_listen(const char *s, struct ch_listen_addr *out,
			   char *why, size_t whylen)
{
	struct ch_listen_addr a;
	char host[CH_ADDR_MAX];
	int rc;

	memset(&a, 0, sizeof(a));
	if (strlen(s) >= sizeof(a.text))
		return cfg_why(why, whylen, "address longer than %zu characters",
			       sizeof(a.text) - 1);
	/* Same length as text, so the copy the parsers cut up always fits. */
	snprintf(host, sizeof(host), "%s", s);
	if (host[0] == '[')
		rc = cfg_parse_listen6(host, &a, why, whylen);
	else
		rc = cfg_parse_listen4(host, &a, why, whylen);
	if (rc != 0)
		return -1;
	snprintf(a.text, sizeof(a.text), "%s", s);
	*out = a;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Setting and formatting one key                                      */
/* ------------------------------------------------------------------ */

/* "1K", "25M", "1G" when exact, else plain bytes: re-parses to the same. */
static void cfg_format_size(uint64_t n, char *buf, size_t len)
{
	static const struct { uint64_t unit; char suffix; } units[] = {
		{ CFG_GIB, 'G' }, { CFG_MIB, 'M' }, { CFG_KIB, 'K' },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (n != 0 && n % units[i].unit == 0) {
			snprintf(buf, len, "%" PRIu64 "%c", n / units[i].unit,
				 units[i].suffix);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, n);
}

/* The largest unit that is exact: "1h", "90s", "250ms", "0s". */
static void cfg_format_duration(uint64_t ms, char *buf, size_t len)
{
	static const struct { uint64_t ms; const char *suffix; } units[] = {
		{ CFG_MS_PER_H, "h" }, { CFG_MS_PER_M, "m" }, { CFG_MS_PER_S, "s" },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms,
				 units[i].suffix);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64 "%s", ms, ms == 0 ? "s" : "ms");
}

/* The accepted values, for messages and the dump: "100ms to 1h". */
static void cfg_format_range(const struct cfg_key *k, char *buf, size_t len)
{
	char lo[32], hi[32];
	size_t n = 0;

	switch (k->type) {
	case CFG_INT:
		snprintf(buf, len, "%" PRId64 " to %" PRId64 "%s", k->min, k->max,
			 (k->flags & CFG_AUTO) ? ", or auto" : "");
		return;
	case CFG_SIZE:
		cfg_format_size((uint64_t)k->min, lo, sizeof(lo));
		cfg_format_size((uint64_t)k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s to %s", lo, hi);
		return;
	case CFG_DURATION:
		cfg_format_duration((uint64_t)k->min, lo, sizeof(lo));
		cfg_format_duration((uint64_t)k->max, hi, sizeof(hi));
		snprintf(buf, len, "%s to %s", lo, hi);
		return;
	case CFG_ENUM:
		buf[0] = '\0';
		for (size_t i = 0; k->choices[i] != NULL && n < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      i ? ", " : "one of ", k->choices[i]);
		return;
	case CFG_BOOL:
		snprintf(buf, len, "on or off");
		return;
	case CFG_LISTEN:
		snprintf(buf, len, "IPv4:port, [IPv6]:port or *:port, up to %d lines",
			 CH_MAX_LISTEN);
		return;
	case CFG_STRING:
		snprintf(buf, len, "text");
		return;
	case CFG_PATH:
		snprintf(buf, len, "a path");
		return;
	}
	snprintf(buf, len, "?");
}

static int cfg_out_of_range(const struct cfg_key *k, const char *v, char *why, size_t whylen)
{
	char range[128];

	cfg_format_range(k, range, sizeof(range));
	return cfg_why(why, whylen, "%s = %s is out of range (%s)", k->name, v, range);
}

static int cfg_set_int(const struct cfg_key *k, const char *v, struct ch_config *c,
		       char *why, size_t whylen)
{
	char *end;
	long long n;

	if ((k->flags & CFG_AUTO) && strcmp(v, "auto") == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		*CFG_AT(c, k->off, int) = (int)(cpus < k->min ? k->min :
						 cpus > k->max ? k->max : cpus);
		*CFG_AT(c, k->aux, int) = 1;
		return 0;
	}
	if ((*v < '0' || *v > '9') && *v != '-')
		goto bad;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (end == v || *end != '\0')
		goto bad;
	if (errno == ERANGE || n < k->min || n > k->max)
		return cfg_out_of_range(k, v, why, whylen);
	*CFG_AT(c, k->off, int) = (int)n;
	if (k->flags & CFG_AUTO)
		*CFG_AT(c, k->aux, int) = 0;
	return 0;
bad:
	return cfg_why(why, whylen, "%s: expected %san integer, got '%s'", k->name,
		       (k->flags & CFG_AUTO) ? "auto or " : "", v);
}

static int cfg_set_size(const struct cfg_key *k, const char *v, struct ch_config *c,
			char *why, size_t whylen)
{
	uint64_t n;

	if (ch_config_parse_size(v, &n) != 0)
		return cfg_why(why, whylen,
			       "%s: expected a size in bytes with an optional K, M or G suffix (as in 64K or 25M), got '%s'",
			       k->name, v);
	if (n < (uint64_t)k->min || n > (uint64_t)k->max)
		return cfg_out_of_range(k, v, why, whylen);
	*CFG_AT(c, k->off, uint64_t) = n;
	return 0;
}

static int cfg_set_duration(const struct cfg_key *k, const char *v, struct ch_config *c,
			    char *why, size_t whylen)
{
	uint64_t ms;

	if (ch_config_parse_duration(v, &ms) != 0)
		return cfg_why(why, whylen,
			       "%s: expected a duration such as 500ms, 10s, 5m or 1h (a plain number is seconds), got '%s'",
			       k->name, v);
	if (ms < (uint64_t)k->min || ms > (uint64_t)k->max)
		return cfg_out_of_range(k, v, why, whylen);
	*CFG_AT(c, k->off, uint32_t) = (uint32_t)ms;
	return 0;
}

static int cfg_set_enum(const struct cfg_key *k, const char *v, struct ch_config *c,
			char *why, size_t whylen)
{
	char range[128];

	for (int i = 0; k->choices[i] != NULL; i++) {
		if (strcasecmp(v, k->choices[i]) == 0) {
			*CFG_AT(c, k->off, int) = i;
			return 0;
		}
	}
	cfg_format_range(k, range, sizeof(range));
	return cfg_why(why, whylen, "%s: expected %s, got '%s'", k->name, range, v);
}

static int cfg_set_string(const struct cfg_key *k, const char *v, struct ch_config *c,
			  char *why, size_t whylen)
{
	size_t len = strlen(v);
	char *field = CFG_AT(c, k->off, char);

	if (len == 0 && !(k->flags & CFG_EMPTY))
		return cfg_why(why, whylen, "%s: expected %s, got an empty value", k->name,
			       k->type == CFG_PATH ? "a path" : "a value");
	if (len >= k->size)
		return cfg_why(why, whylen, "%s: longer than %zu characters", k->name,
			       k->size - 1);
	/* Whole field zeroed, so equal settings are equal bytes (memcmp). */
	memset(field, 0, k->size);
	memcpy(field, v, len);
	return 0;
}

static int cfg_add_listen(const struct cfg_key *k, const char *v, struct ch_config *c,
			  char *why, size_t whylen)
{
	struct ch_listen_addr *list = CFG_AT(c, k->off, struct ch_listen_addr);
	int *n = CFG_AT(c, k->aux, int);
	struct ch_listen_addr a;
	char reason[CH_CONFIG_ERR_MAX / 2];

	if (*n >= CH_MAX_LISTEN)
		return cfg_why(why, whylen, "too many %s lines (at most %d)", k->name,
			       CH_MAX_LISTEN);
	if (ch_config_parse_listen(v, &a, reason, sizeof(reason)) != 0)
		return cfg_why(why, whylen, "%s = %s: %s", k->name, v, reason);
	for (int i = 0; i < *n; i++) {
		if (list[i].addrlen == a.addrlen &&
		    memcmp(&list[i].addr, &a.addr, a.addrlen) == 0)
			return cfg_why(why, whylen, "%s = %s: the same address as %s",
				       k->name, v, list[i].text);
	}
	list[(*n)++] = a;
	return 0;
}

static int cfg_set(const struct cfg_key *k, const char *v, struct ch_config *c,
		   char *why, size_t whylen)
{
	int on;

	switch (k->type) {
	case CFG_STRING:
	case CFG_PATH:
		return cfg_set_string(k, v, c, why, whylen);
	case CFG_INT:
		return cfg_set_int(k, v, c, why, whylen);
	case CFG_SIZE:
		return cfg_set_size(k, v, c, why, whylen);
	case CFG_DURATION:
		return cfg_set_duration(k, v, c, why, whylen);
	case CFG_ENUM:
		return cfg_set_enum(k, v, c, why, whylen);
	case CFG_BOOL:
		if (ch_config_parse_bool(v, &on) != 0)
			return cfg_why(why, whylen,
				       "%s: expected on, off, yes, no, true, false, 1 or 0, got '%s'",
				       k->name, v);
		*CFG_AT(c, k->off, int) = on;
		return 0;
	case CFG_LISTEN:
		return cfg_add_listen(k, v, c, why, whylen);
	}
	return cfg_why(why, whylen, "%s: unknown type", k->name);
}

/* A repeatable key given in the file replaces its default, not adds to it. */
static void cfg_clear(const struct cfg_key *k, struct ch_config *c)
{
	if (k->type == CFG_LISTEN) {
		memset(CFG_AT(c, k->off, char), 0, k->size);
		*CFG_AT(c, k->aux, int) = 0;
	}
}

/* One value as the file would say it; i picks a line of a repeatable key. */
static void cfg_format_value(const struct cfg_key *k, const struct ch_config *c,
			     int i, char *buf, size_t len)
{
	int n;

	switch (k->type) {
	case CFG_STRING:
	case CFG_PATH:
		snprintf(buf, len, "%s", CFG_CAT(c, k->off, char));
		return;
	case CFG_INT:
		if ((k->flags & CFG_AUTO) && *CFG_CAT(c, k->aux, int))
			snprintf(buf, len, "auto");
		else
			snprintf(buf, len, "%d", *CFG_CAT(c, k->off, int));
		return;
	case CFG_SIZE:
		cfg_format_size(*CFG_CAT(c, k->off, uint64_t), buf, len);
		return;
	case CFG_DURATION:
		cfg_format_duration(*CFG_CAT(c, k->off, uint32_t), buf, len);
		return;
	case CFG_ENUM:
		/* Walk to the value, so a bad one prints as itself, not past the end. */
		n = *CFG_CAT(c, k->off, int);
		for (int j = 0; k->choices[j] != NULL; j++) {
			if (j == n) {
				snprintf(buf, len, "%s", k->choices[j]);
				return;
			}
		}
		snprintf(buf, len, "%d", n);
		return;
	case CFG_BOOL:
		snprintf(buf, len, "%s", *CFG_CAT(c, k->off, int) ? "on" : "off");
		return;
	case CFG_LISTEN:
		snprintf(buf, len, "%s", CFG_CAT(c, k->off, struct ch_listen_addr)[i].text);
		return;
	}
	buf[0] = '\0';
}

static int cfg_value_count(const struct cfg_key *k, const struct ch_config *c)
{
	return k->type == CFG_LISTEN ? *CFG_CAT(c, k->aux, int) : 1;
}

/* ------------------------------------------------------------------ */
/* Defaults, keys and the dump                                          */
/* ------------------------------------------------------------------ */

void ch_config_defaults(struct ch_config *c)
{
	char why[CH_CONFIG_ERR_MAX];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		if (cfg_set(&cfg_keys[i], cfg_keys[i].def, c, why, sizeof(why)) != 0) {
			/* A bad default is a bug in the table, not in any file. */
			ch_err("config: default of %s: %s", cfg_keys[i].key, why);
			abort();
		}
	}
}

static const char *cfg_key_names[CFG_NKEYS + 1];
static pthread_once_t cfg_key_names_once = PTHREAD_ONCE_INIT;

static void cfg_key_names_fill(void)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		cfg_key_names[i] = cfg_keys[i].key;
	cfg_key_names[CFG_NKEYS] = NULL;
}

const char *const *ch_config_keys(void)
{
	/* Filled once: callers may be on any thread, and it never changes. */
	pthread_once(&cfg_key_names_once, cfg_key_names_fill);
	return cfg_key_names;
}

void ch_config_dump(const struct ch_config *c, FILE *out)
{
	const char *section = NULL;
	char range[128], value[CH_PATH_MAX];

	fprintf(out, "# chatd settings, as resolved from %s.\n"
		"# A valid chatd.conf; see chatd.conf(5).\n",
		c->path[0] ? c->path : "the built-in defaults");
	for (size_t i = 0; i < CFG_NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (section == NULL || strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(out, "\n[%s]\n", section);
		}
		cfg_format_range(k, range, sizeof(range));
		fprintf(out, "# %s\n# %s; default %s", k->help, range, k->def);
		if ((k->flags & CFG_AUTO) && *CFG_CAT(c, k->aux, int))
			fprintf(out, "; auto is %d here", *CFG_CAT(c, k->off, int));
		fputc('\n', out);
		for (int j = 0; j < cfg_value_count(k, c); j++) {
			cfg_format_value(k, c, j, value, sizeof(value));
			fprintf(out, "%s = %s\n", k->name, value);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

struct cfg_parse {
	struct ch_config *c;		/* the private copy being filled */
	const char *name;		/* file name for messages */
	FILE *fp;			/* file source, or NULL for text */
	const char *text;		/* text source: the next unread byte */
	char *buf;			/* getline's buffer (file source) */
	size_t bufcap;
	int lineno;			/* the line last handed to inih */
	int read_errno;			/* getline failed: why */
	int err_line;			/* first error's line; 0 = none yet */
	char msg[CH_CONFIG_ERR_MAX];	/* first error's message */
	int first_line[CFG_NKEYS];	/* where each key was first set; 0 = not yet */
};

static void cfg_fail(struct cfg_parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record an error at the current line; only the first one counts. */
static void cfg_fail(struct cfg_parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line != 0)
		return;
	p->err_line = p->lineno;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static int cfg_section_known(const char *s)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].section, s) == 0)
			return 1;
	return 0;
}

static const struct cfg_key *cfg_find(const char *section, const char *name)
{
	for (size_t i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* The next raw line without its end of line; -1 at the end or on error. */
static int cfg_next_line(struct cfg_parse *p, const char **line, size_t *len)
{
	ssize_t n;

	if (p->fp == NULL) {
		const char *nl;

		if (*p->text == '\0')
			return -1;
		nl = strchr(p->text, '\n');
		if (nl == NULL)
			nl = p->text + strlen(p->text);
		*line = p->text;
		*len = (size_t)(nl - p->text);
		p->text = *nl ? nl + 1 : nl;
	} else {
		errno = 0;
		n = getline(&p->buf, &p->bufcap, p->fp);
		if (n < 0) {
			if (ferror(p->fp))
				p->read_errno = errno ? errno : EIO;
			return -1;
		}
		*line = p->buf;
		*len = (size_t)n;
		if (*len > 0 && p->buf[*len - 1] == '\n')
			(*len)--;
	}
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return 0;
}

/* Section headers are checked here: inih does not report empty ones. */
static void cfg_check_section(struct cfg_parse *p, char *line)
{
	char *close = strchr(line, ']');

	if (close == NULL) {
		cfg_fail(p, "expected ']' to close the section name");
		return;
	}
	*close = '\0';
	if (!cfg_section_known(line + 1))
		cfg_fail(p, "unknown section [%s]", line + 1);
	*close = ']';
}

/*
 * inih's reader (fgets-like): hands over one cleaned line per call, see the
 * top of the file. Stops the parse (returns NULL) after the first error.
 */
static char *cfg_read_line(char *str, int num, void *stream)
{
	static const char bom[] = "\xEF\xBB\xBF";
	struct cfg_parse *p = stream;
	const char *line;
	size_t len;
	char *cut;

	if (p->err_line != 0 || cfg_next_line(p, &line, &len) != 0)
		return NULL;
	p->lineno++;
	if (p->lineno == 1 && len >= 3 && memcmp(line, bom, 3) == 0) {
		line += 3;
		len -= 3;
	}
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	str[0] = '\0';
	/*
	 * Room for the line, a '\n' and the '\0', as with fgets: a line that
	 * fills inih's buffer makes builds with INI_ALLOW_REALLOC read on.
	 */
	if (len + 2 > (size_t)num) {
		cfg_fail(p, "line longer than %d characters", num - 2);
		return str;
	}
	if (memchr(line, '\0', len) != NULL) {
		cfg_fail(p, "line contains a NUL byte");
		return str;
	}
	if (len == 0 || *line == ';' || *line == '#')
		return str;
	memcpy(str, line, len);
	str[len] = '\0';
	/* Inline comments: ';' after a blank, the same rule inih applies. */
	for (cut = str + 1; (cut = strchr(cut, ';')) != NULL; cut++) {
		if (cut[-1] == ' ' || cut[-1] == '\t') {
			*cut = '\0';
			break;
		}
	}
	if (str[0] == '[')
		cfg_check_section(p, str);
	else if (strpbrk(str, "=:") == NULL)
		cfg_fail(p, "expected 'key = value', a [section] line or a comment");
	return str;
}

static int cfg_on_value(void *user, const char *section, const char *name,
			const char *value)
{
	struct cfg_parse *p = user;
	const struct cfg_key *k;
	char why[CH_CONFIG_ERR_MAX];
	size_t i;

	if (name == NULL)	/* a new section, in builds that report them */
		return 1;
	if (section[0] == '\0') {
		cfg_fail(p, "key '%s' comes before any [section] line", name);
		return 0;
	}
	if (!cfg_section_known(section)) {
		cfg_fail(p, "unknown section [%s]", section);
		return 0;
	}
	k = cfg_find(section, name);
	if (k == NULL) {
		cfg_fail(p, "unknown key '%s' in [%s]", name, section);
		return 0;
	}
	if (value == NULL) {	/* builds that allow a key with no '=' */
		cfg_fail(p, "expected '%s = value'", name);
		return 0;
	}
	i = (size_t)(k - cfg_keys);
	if (p->first_line[i] != 0 && !(k->flags & CFG_REPEAT)) {
		cfg_fail(p, "%s is given twice in [%s] (first on line %d)", name,
			 section, p->first_line[i]);
		return 0;
	}
	if (p->first_line[i] == 0) {
		p->first_line[i] = p->lineno;
		cfg_clear(k, p->c);
	}
	if (cfg_set(k, value, p->c, why, sizeof(why)) != 0 ||
	    (k->check && k->check(p->c, why, sizeof(why)) != 0)) {
		cfg_fail(p, "%s", why);
		return 0;
	}
	return 1;
}

/* Parse p's source into a copy of the defaults; *c only changes on success. */
static int cfg_load(struct ch_config *c, struct cfg_parse *p, const char *path,
		    char *err, size_t errlen)
{
	struct ch_config tmp;
	int rc;

	ch_config_defaults(&tmp);
	snprintf(tmp.path, sizeof(tmp.path), "%s", path);
	p->c = &tmp;
	rc = ini_parse_stream(cfg_read_line, p, cfg_on_value, p);
	if (p->read_errno != 0) {
		p->err_line = 0;
		snprintf(p->msg, sizeof(p->msg), "cannot read: %s", strerror(p->read_errno));
	} else if (rc < 0) {
		p->err_line = 0;
		snprintf(p->msg, sizeof(p->msg), "cannot parse: out of memory");
	} else if (rc > 0 && (p->err_line == 0 || rc < p->err_line)) {
		/* inih rejected a line our reader let through. */
		p->err_line = rc;
		snprintf(p->msg, sizeof(p->msg), "cannot parse this line");
	} else if (p->err_line == 0) {
		*c = tmp;
		return 0;
	}
	snprintf(err, errlen, "%s:%d: %s", p->name, p->err_line, p->msg);
	return -1;
}

int ch_config_load(struct ch_config *c, const char *path, char *err, size_t errlen)
{
	struct cfg_parse p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.name = path;
	p.fp = fopen(path, "re");
	if (p.fp == NULL) {
		snprintf(err, errlen, "%s:0: cannot open: %s", path, strerror(errno));
		return -1;
	}
	rc = cfg_load(c, &p, path, err, errlen);
	free(p.buf);
	fclose(p.fp);
	return rc;
}

int ch_config_load_string(struct ch_config *c, const char *name,
			  const char *text, char *err, size_t errlen)
{
	struct cfg_parse p;

	memset(&p, 0, sizeof(p));
	p.name = name ? name : "(string)";
	p.text = text;
	return cfg_load(c, &p, p.name, err, errlen);
}
