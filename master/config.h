/*
 * chatd's configuration: an INI file read with inih, or embedded defaults
 * when no file is given. One table in config.c lists every key with its
 * section, type, range and default; parsing, validation, the -T dump and
 * the man page check all come from that table.
 *
 * A loaded config is plain data (fixed-size arrays, no pointers into the
 * heap), so it can be copied, compared and inherited across fork.
 */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CH_MAX_LISTEN 8		/* listen = ... lines in [server] */
#define CH_MAX_WORKERS 64
#define CH_PATH_MAX 1024
#define CH_ADDR_MAX 128
#define CH_CONFIG_ERR_MAX 512

struct ch_listen_addr {
	char text[CH_ADDR_MAX];		/* as written: "127.0.0.1:8080", "[::1]:8080" */
	struct sockaddr_storage addr;	/* resolved, port included */
	socklen_t addrlen;
};

struct ch_config {
	char path[CH_PATH_MAX];		/* the file read, "" for the embedded defaults */

	/* [server] */
	struct ch_listen_addr listen[CH_MAX_LISTEN];
	int n_listen;
	int workers;			/* resolved: "auto" becomes the CPU count */
	int workers_auto;		/* 1 when the file said auto (or nothing) */
	char data_dir[CH_PATH_MAX];
	char web_root[CH_PATH_MAX];
	int max_connections;		/* per worker; the newest past it is refused */
	uint32_t header_timeout_ms;	/* request head must arrive within this */
	uint32_t idle_timeout_ms;	/* keep-alive connection with no request */
	uint32_t shutdown_timeout_ms;	/* SIGTERM: finish requests, then exit */
	uint32_t away_after_ms;		/* WebSocket silence that makes a user away */
	uint64_t max_body_size;		/* bytes of a request body (not uploads) */
	int log_level;			/* enum ch_log_level */
	char access_log[CH_PATH_MAX];	/* "off", "stderr" or a file path */

	/* [admin] */
	char admin_socket[CH_PATH_MAX];	/* chatadm's Unix socket; "" = <data_dir>/chatd.sock */

	/* [journal] */
	int ack;			/* enum ch_ack_mode */
	uint64_t segment_size;		/* roll log segments at this size */
	int room_rings;			/* shared-memory room rings */
	int ring_slots;			/* slots per room ring (power of two) */
	int ring_slot_size;		/* bytes per slot (multiple of 8) */

	/* [replication] (journal/repl.h) */
	int repl_role;			/* enum ch_repl_role: the role at start */
	char repl_listen[CH_ADDR_MAX];	/* host:port standbys connect to; "" = none */
	char repl_primary[CH_ADDR_MAX];	/* host:port of the peer to follow; "" = none */
	char repl_secret_file[CH_PATH_MAX];	/* shared HMAC secret; "" = no auth */
	uint32_t repl_ack_timeout_ms;	/* ack = replica: longest wait for the standby */

	/* [auth] */
	char key_file[CH_PATH_MAX];	/* "" = <data_dir>/jwt.key */
	uint32_t token_lifetime_ms;
	int hash_method;		/* enum ch_hash_method */
	int hash_cost;			/* 0 = the library's default */
	int hash_threads;		/* per worker */

	/* [limits] */
	int auth_per_ip_per_minute;	/* 0 = no limit */
	int auth_failures_per_user_per_minute;	/* 0 = no limit */
	uint64_t max_message_bytes;
	int max_rooms_per_user;
	int max_participants;

	/* [uploads] (worker/upload.h) */
	int upload_backend;		/* enum ch_upload_backend */
	char upload_dir[CH_PATH_MAX];	/* local files; "" = <data_dir>/files */
	uint64_t upload_max_size;	/* bytes of one uploaded file */
	uint32_t upload_url_expiry_ms;	/* life of a signed or presigned URL */

	/* [s3] (worker/store_s3.h) */
	char s3_endpoint[CH_ADDR_MAX];	/* host[:port] */
	char s3_bucket[CH_ADDR_MAX];
	char s3_region[CH_ADDR_MAX];
	char s3_access_key[CH_ADDR_MAX];
	char s3_secret_key_file[CH_PATH_MAX];
	int s3_style;			/* enum ch_s3_style */
	int s3_protocol;		/* enum ch_s3_protocol */
	char s3_public_url[CH_PATH_MAX];	/* "" = presigned URLs */
	int s3_create_bucket;		/* create the bucket when it is missing */
};

enum ch_upload_backend {
	CH_UPLOAD_LOCAL,	/* files under upload_dir */
	CH_UPLOAD_S3,		/* an S3-compatible store ([s3]) */
};

enum ch_s3_style {
	CH_S3_PATH,		/* http://endpoint/bucket/key */
	CH_S3_VIRTUAL,		/* http://bucket.endpoint/key */
};

enum ch_s3_protocol {
	CH_S3_HTTP,
	CH_S3_HTTPS,
};

enum ch_ack_mode {
	CH_ACK_WRITE,	/* acked once in the log (page cache) */
	CH_ACK_FSYNC,	/* acked once on disk */
	CH_ACK_REPLICA,	/* acked once on disk here and on the standby */
};

enum ch_repl_role {
	CH_ROLE_PRIMARY,	/* takes writes, streams the log to a standby */
	CH_ROLE_STANDBY,	/* follows a primary, serves reads only */
};

enum ch_hash_method {
	CH_HASH_YESCRYPT,	/* "$y$", libxcrypt's preferred */
	CH_HASH_BCRYPT,		/* "$2b$" */
};

/* Fill *c with the embedded defaults (what chatd runs with without -c). */
void ch_config_defaults(struct ch_config *c);

/*
 * Read and validate a file over the defaults. On error returns -1 and
 * writes "file:line: message" into err (line 0 for whole-file problems,
 * such as a file that cannot be opened). *c is untouched on error.
 */
int ch_config_load(struct ch_config *c, const char *path, char *err, size_t errlen);

/* The same from a string; name stands for the file name in messages. */
int ch_config_load_string(struct ch_config *c, const char *name,
			  const char *text, char *err, size_t errlen);

/* Print the resolved settings as a valid config file (chatd -T). */
void ch_config_dump(const struct ch_config *c, FILE *out);

/* Every key as "section.name", NULL-terminated (for the man page check). */
const char *const *ch_config_keys(void);

/*
 * The value parsers behind the table, for tests and for modules with
 * settings of the same kinds. Each returns 0, or -1 if s is not valid.
 * Numbers too large for 64 bits saturate to UINT64_MAX (so a range check
 * rejects them) rather than fail as bad syntax.
 *   size:     bytes, optional K/M/G suffix, 1024-based ("25M")
 *   duration: milliseconds out; suffix ms, s, m or h, none means seconds
 *   bool:     on/off, yes/no, true/false, 1/0 (any case)
 *   listen:   "a.b.c.d:port", "[v6]:port", "*:port"; no name lookup; on
 *             error why (if not NULL) says what is wrong
 */
int ch_config_parse_size(const char *s, uint64_t *bytes);
int ch_config_parse_duration(const char *s, uint64_t *ms);
int ch_config_parse_bool(const char *s, int *on);
int ch_config_parse_listen(const char *s, struct ch_listen_addr *out,
			   char *why, size_t whylen);

#endif
