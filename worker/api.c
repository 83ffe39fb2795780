/*
 * The REST API: see api.h.
 *
 * An API request that has to wait (for a hash, the journal or the disk)
 * leaves its connection in CH_CONN_BUSY with the request still attached;
 * the context of the wait (struct api_op) remembers the connection's slot
 * and generation, so an answer for a connection that closed meanwhile is
 * dropped instead of going to whoever holds the slot now. Once answered,
 * the connection parses the next pipelined request, if any.
 */
#define _GNU_SOURCE
#include "worker/api.h"

#include "common/auth.h"
#include "common/buf.h"
#include "common/hashmem.h"
#include "common/log.h"
#include "common/sched.h"
#include "common/utf8.h"
#include "journal/frame.h"
#include "journal/journal.h"
#include "journal/logread.h"
#include "journal/proto.h"
#include "journal/state.h"
#include "worker/pool.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A token verified recently: keep-alive clients send the same one with
 * every request, and checking it again (base64, JSON, HMAC) is most of
 * what a small request costs. Only a verified token is cached, with its
 * expiry; a different token in the slot is simply verified. */
struct token_cache_entry {
	uint64_t hash;
	int64_t exp;
	char user[CH_USERNAME_MAX + 1];
	char token[CH_TOKEN_SIZE];
};

struct ch_api {
	unsigned char key[CH_KEY_MIN_BYTES];
	struct token_cache_entry tokens[CH_API_TOKEN_CACHE];
	struct ch_limit per_ip;		/* register + login attempts */
	struct ch_limit per_user;	/* failed logins */
	const char *hash_prefix;
	unsigned long hash_cost;
	char log_dir[CH_PATH_MAX + 16];
	/* A real hash of nothing anyone knows: a login for a user who does
	 * not exist is checked against it, so it takes as long as one who
	 * does, and timing does not tell which usernames exist. */
	char dummy_hash[CH_PASSWORD_HASH_SIZE];
	/* 1 while hashing is raised from idle priority: set by the tick on the
	 * loop when hashes starve, cleared there once the pool has no work;
	 * read by the hashing threads at each job (relaxed: a hint). */
	_Atomic int hash_raised;
};

enum api_kind {
	API_REGISTER,
	API_LOGIN,
	API_HISTORY,
};

struct api_op {
	struct ch_job job;
	struct ch_worker *w;
	uint32_t conn, gen;
	enum api_kind kind;
	int result;		/* job: 0 ok, -1 failed; login: 1 match */
	char user[CH_USERNAME_MAX + 1];
	char password[CH_PASSWORD_MAX + 1];
	char hash[CH_PASSWORD_HASH_SIZE];	/* register: made; login: stored */
	char new_hash[CH_PASSWORD_HASH_SIZE];	/* login: an upgrade, or "" */
	/* history */
	uint64_t *pos;
	uint32_t n_pos;
	struct ch_buf out;
};

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

void ch_api_key_path(const struct ch_config *cfg, char *out, size_t len)
{
	if (cfg->key_file[0])
		snprintf(out, len, "%s", cfg->key_file);
	else
		snprintf(out, len, "%s/jwt.key", cfg->data_dir);
}

int ch_api_init(struct ch_worker *w)
{
	const struct ch_config *cfg = w->cfg;
	struct ch_api *a = calloc(1, sizeof(*a));
	char path[CH_PATH_MAX + 16];

	if (!a)
		return -1;
	ch_sched_latency();
	ch_api_key_path(cfg, path, sizeof(path));
	/* The master created the file before forking; this only reads it. */
	if (ch_key_load_or_create(path, a->key, sizeof(a->key)) < 0)
		goto fail;
	/* Counted in shared memory: the limits hold across all workers. */
	a->per_ip = (struct ch_limit){ ch_shm_limit_slots(w->shm, CH_LIMIT_AUTH_PER_IP),
				       CH_SHM_LIMIT_SLOTS, (unsigned)cfg->auth_per_ip_per_minute };
	a->per_user = (struct ch_limit){ ch_shm_limit_slots(w->shm, CH_LIMIT_FAILURES_PER_USER),
					 CH_SHM_LIMIT_SLOTS,
					 (unsigned)cfg->auth_failures_per_user_per_minute };
	a->hash_prefix = cfg->hash_method == CH_HASH_BCRYPT ? CH_PASSWORD_PREFIX_BCRYPT
							    : CH_PASSWORD_PREFIX_YESCRYPT;
	a->hash_cost = (unsigned long)cfg->hash_cost;
	snprintf(a->log_dir, sizeof(a->log_dir), "%s/" CH_JOURNAL_DIR, cfg->data_dir);
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	unsigned char noise[32];
	char secret[sizeof(noise) * 2 + 1];
	if (!cd || getrandom(noise, sizeof(noise), 0) != (ssize_t)sizeof(noise)) {
		free(cd);
		goto fail;
	}
	ch_hex(noise, sizeof(noise), secret);
	int rc = ch_password_hash(secret, a->hash_prefix, a->hash_cost, cd, a->dummy_hash,
				  sizeof(a->dummy_hash));
	free(cd);
	if (rc < 0) {
		ch_err("worker %d: password hashing does not work with hash_method/hash_cost",
		       w->index);
		goto fail;
	}
	w->api = a;
	return 0;
fail:
	free(a);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */

static struct api_op *op_new(struct ch_worker *w, struct ch_conn *c, enum api_kind kind)
{
	struct api_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->w = w;
	op->conn = (uint32_t)(c - w->conns);
	op->gen = c->gen;
	op->kind = kind;
	ch_buf_init(&op->out);
	return op;
}

static void op_free(struct api_op *op)
{
	/* The password must not linger in freed memory. */
	explicit_bzero(op->password, sizeof(op->password));
	free(op->pos);
	ch_buf_free(&op->out);
	free(op);
}

/* The connection that started op, if it is still there and waiting. */
static struct ch_conn *op_conn(struct api_op *op)
{
	struct ch_conn *c = &op->w->conns[op->conn];
	if (c->gen != op->gen || c->state != CH_CONN_BUSY || !c->req)
		return NULL;
	return c;
}

/* Answer, then go on with any pipelined request that waited. */
static void finish(struct ch_worker *w, struct ch_conn *c, int status, const char *body,
		   size_t len, const char *extra)
{
	ch_respond(w, c, status, "application/json", body, len, extra);
	ch_http_conn_resume(w, c);
}

static void finish_error(struct ch_worker *w, struct ch_conn *c, int status, const char *code,
			 const char *message)
{
	ch_respond_error(w, c, status, code, message);
	ch_http_conn_resume(w, c);
}

static void bus_error(struct ch_worker *w, struct ch_conn *c, uint32_t status)
{
	const struct ch_bus_error *e = ch_bus_error(status);
	finish_error(w, c, e->http, e->code, e->message);
}

/*
 * Whether JSON text has a \u0000 escape in a string. cJSON hands strings
 * over NUL-terminated, so such a string would be cut short silently; we
 * refuse it instead. Escapes are walked pairwise, so an escaped backslash
 * followed by "u0000" is not mistaken for one.
 */
static int has_nul_escape(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\\')
			continue;
		if (p[i + 1] == 'u' && i + 5 < n && memcmp(p + i + 2, "0000", 4) == 0)
			return 1;
		i++;	/* skip the escaped character */
	}
	return 0;
}

static cJSON *parse_object(struct ch_worker *w, struct ch_conn *c, struct ch_req *r)
{
	if (!ch_utf8_valid(r->body, r->body_len)) {
		ch_respond_error(w, c, 400, "bad_request", "the body is not UTF-8");
		return NULL;
	}
	if (has_nul_escape(r->body, r->body_len)) {
		ch_respond_error(w, c, 400, "bad_request", "strings must not contain NUL (\\u0000)");
		return NULL;
	}
	cJSON *root = r->body_len ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		ch_respond_error(w, c, 400, "bad_request", "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/* A string member, or NULL (with *len 0) when absent or not a string. */
static const char *json_string(const cJSON *obj, const char *name, size_t *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsString(v)) {
		*len = 0;
		return NULL;
	}
	*len = strlen(v->valuestring);
	return v->valuestring;
}

/* The body of register and login: {"username": ..., "password": ...}.
 * Either may come back NULL (absent or not a string); the caller says why. */
static cJSON *read_credentials(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			       const char **user, size_t *ul, const char **pass, size_t *pl)
{
	cJSON *root = parse_object(w, c, r);
	if (root) {
		*user = json_string(root, "username", ul);
		*pass = json_string(root, "password", pl);
	}
	return root;
}

static void peer_address(const struct ch_conn *c, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	snprintf(out, len, "unknown");
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)len);
}

/* 429 with a Retry-After of at least one second. */
static void refuse_429(struct ch_worker *w, struct ch_conn *c, uint32_t retry, const char *msg)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry ? retry : 1);
	ch_respond_error_hdr(w, c, 429, "rate_limited", msg, extra);
}

/* Count an attempt against the peer's address; 1 (and a 429 sent) when it
 * is over its limit. */
static int ip_limited(struct ch_worker *w, struct ch_conn *c)
{
	char ip[INET6_ADDRSTRLEN];
	uint32_t retry = 0;

	peer_address(c, ip, sizeof(ip));
	if (ch_limit_hit(&w->api->per_ip, ip, w->now_ms, &retry))
		return 0;
	refuse_429(w, c, retry, "too many attempts; retry later");
	return 1;
}

int ch_api_token_user(struct ch_worker *w, const char *token, char *user, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t n = strlen(token);
	int64_t now = now_s();

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)token[i]) * 0x100000001b3ull;
	struct token_cache_entry *e = &w->api->tokens[h % CH_API_TOKEN_CACHE];
	if (e->hash == h && now < e->exp && strcmp(e->token, token) == 0) {
		snprintf(user, len, "%s", e->user);
		return CH_TOKEN_OK;
	}
	struct ch_token_claims claims;
	int rc = ch_token_verify_claims(w->api->key, sizeof(w->api->key), token, now, &claims);
	if (rc != CH_TOKEN_OK)
		return rc;
	snprintf(user, len, "%s", claims.sub);
	if (n < sizeof(e->token)) {
		e->hash = h;
		e->exp = claims.exp;
		snprintf(e->user, sizeof(e->user), "%s", claims.sub);
		memcpy(e->token, token, n + 1);
	}
	return CH_TOKEN_OK;
}

int ch_api_request_user(struct ch_worker *w, const struct ch_req *r, int allow_query,
			char *user, size_t len)
{
	static const char bearer[] = "Bearer ";
	const size_t bl = sizeof(bearer) - 1;
	const struct ch_str *h = &r->http.authorization;
	struct ch_str t = { NULL, 0 };
	char token[CH_TOKEN_SIZE];

	if (h->p && h->len > bl && strncasecmp(h->p, bearer, bl) == 0) {
		t.p = h->p + bl;
		t.len = h->len - bl;
	} else if (!allow_query || !ch_http_query_param(r->http.query, "token", &t)) {
		return CH_TOKEN_MALFORMED;
	}
	if (t.len == 0 || t.len >= sizeof(token))
		return t.len ? CH_TOKEN_TOO_LONG : CH_TOKEN_MALFORMED;
	memcpy(token, t.p, t.len);
	token[t.len] = '\0';
	return ch_api_token_user(w, token, user, len);
}

const char *ch_api_auth(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			char *user, size_t len)
{
	int rc = ch_api_request_user(w, r, 0, user, len);
	if (rc != CH_TOKEN_OK) {
		ch_respond_error_hdr(w, c, 401, "unauthorized",
				     rc == CH_TOKEN_MALFORMED ? "a valid token is required"
							      : ch_token_strerror(rc),
				     "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
		return NULL;
	}
	return user;
}

static int submit(struct ch_worker *w, struct ch_conn *c, struct api_op *op,
		  void (*fn)(struct ch_job *))
{
	/* Reads never wait behind a queue of password hashes. */
	struct ch_pool *pool = op->kind == API_HISTORY ? w->io_pool : w->pool;
	op->job.fn = fn;
	if (ch_pool_submit(pool, &op->job) < 0) {
		op_free(op);
		ch_respond_error_hdr(w, c, 503, "busy", "the server is busy; retry shortly",
				     "Retry-After: 1\r\n");
		return -1;
	}
	CH_STAT_SET(w->stats, hash_queue, ch_pool_queue_depth(w->pool));
	return 0;
}

/*
 * Hashing runs as SCHED_IDLE (common/sched.h). When the machine has no CPU
 * to spare that would starve logins, so when a tick finds a hash that has
 * waited or run too long it raises the threads hashing now to a low but
 * fair priority, and so do the jobs that start while hashing is raised,
 * until the pool has nothing left to do: a backlog the machine cannot
 * hash at idle priority is hashed at nice 10, and a machine with CPU to
 * spare goes back to idle-priority hashing. hash_boosts counts the times
 * hashing was raised. The tick also publishes how many hashes found their
 * memory kept (common/hashmem.h).
 */
void ch_api_tick(struct ch_worker *w)
{
	pid_t tids[CH_POOL_MAX_THREADS];
	struct ch_api *a = w->api;
	struct ch_hashmem_stats hs;

	ch_hashmem_stats(&hs);
	CH_STAT_SET(w->stats, hash_memory_reused, hs.reused);
	if (!ch_sched_idle_ok())
		return;	/* hashing runs at a fair priority already */
	if (atomic_load_explicit(&a->hash_raised, memory_order_relaxed)) {
		if (ch_pool_queue_depth(w->pool) == 0)
			atomic_store_explicit(&a->hash_raised, 0, memory_order_relaxed);
		return;
	}
	int n = ch_pool_stalled(w->pool, CH_API_HASH_STALL_MS, tids, CH_POOL_MAX_THREADS);

	if (n == 0)
		return;
	atomic_store_explicit(&a->hash_raised, 1, memory_order_relaxed);
	for (int i = 0; i < n; i++)
		ch_sched_boost(tids[i]);
	CH_STAT_ADD(w->stats, hash_boosts, 1);
}

/* A job's hashing runs at idle priority unless hashing is raised
 * (ch_api_tick). The job ends with ch_sched_background_done(), before its
 * thread takes the pool's lock again, which the loop takes too. */
static void hash_begin(const struct ch_api *a)
{
	if (!atomic_load_explicit(&a->hash_raised, memory_order_relaxed))
		ch_sched_background();
}

/* ---------------------------------------------------------------------- */
/* Register                                                               */

static void job_hash(struct ch_job *job)
{
	struct api_op *op = CH_POOL_CONTAINER_OF(job, struct api_op, job);
	const struct ch_api *a = op->w->api;

	hash_begin(a);
	op->result = ch_password_hash(op->password, a->hash_prefix, a->hash_cost,
				      ch_pool_thread_crypt_data(), op->hash, sizeof(op->hash));
	ch_sched_background_done();
}

static void registered(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		       struct ch_payload_reader *rd)
{
	(void)ctx;
	(void)rd;
	if (!c)
		return;
	if (status != CH_BUS_OK) {
		bus_error(w, c, status);
		return;
	}
	static const char ok[] = "{\"ok\":true}";
	finish(w, c, 201, ok, sizeof(ok) - 1, NULL);
}

static void register_hashed(struct api_op *op, struct ch_conn *c)
{
	struct ch_worker *w = op->w;
	struct ch_payload_writer pw;

	if (op->result < 0) {
		finish_error(w, c, 500, "internal", "password hashing failed");
		return;
	}
	if (ch_bus_begin(w->bus, &pw, 512) < 0) {
		finish_error(w, c, 503, "unavailable", "the journal is overloaded; retry");
		return;
	}
	ch_payload_put_str(&pw, op->user);
	ch_payload_put_str(&pw, op->hash);
	if (ch_bus_send(w->bus, CH_REQ_REGISTER, &pw, w, c, registered, NULL) < 0)
		finish_error(w, c, 503, "unavailable", "the journal is overloaded; retry");
}

void ch_api_register(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	size_t ul, pl;
	(void)path;

	const char *user, *pass;
	cJSON *root = read_credentials(w, c, r, &user, &ul, &pass, &pl);
	if (!root)
		return;
	if (!user || !ch_valid_username(user, ul)) {
		ch_respond_error(w, c, 400, "invalid_username",
				 "a username is 1 to 32 of a-z 0-9 _ . -");
	} else if (!pass || !ch_valid_password(pass, pl)) {
		ch_respond_error(w, c, 400, "invalid_password", "a password is 8 to 256 bytes");
	} else if (!ip_limited(w, c)) {
		struct api_op *op = op_new(w, c, API_REGISTER);
		if (!op) {
			ch_respond_error(w, c, 500, "internal", "out of memory");
		} else {
			memcpy(op->user, user, ul + 1);
			memcpy(op->password, pass, pl + 1);
			submit(w, c, op, job_hash);
		}
	}
	cJSON_Delete(root);
}

/* ---------------------------------------------------------------------- */
/* Login                                                                  */

static void job_verify(struct ch_job *job)
{
	struct api_op *op = CH_POOL_CONTAINER_OF(job, struct api_op, job);
	const struct ch_api *a = op->w->api;
	struct crypt_data *cd = ch_pool_thread_crypt_data();
	const char *stored = op->hash[0] ? op->hash : a->dummy_hash;

	hash_begin(a);
	op->result = ch_password_verify(op->password, stored, cd);
	if (!op->hash[0])
		op->result = 0;	/* no such user: same work, same answer */
	op->new_hash[0] = '\0';
	if (op->result == 1 && ch_password_needs_upgrade(op->hash, a->hash_prefix, a->hash_cost) == 1 &&
	    ch_password_hash(op->password, a->hash_prefix, a->hash_cost, cd, op->new_hash,
			     sizeof(op->new_hash)) < 0)
		op->new_hash[0] = '\0';
	ch_sched_background_done();
}

static void password_saved(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			   struct ch_payload_reader *rd)
{
	(void)w;
	(void)c;
	(void)ctx;
	(void)rd;
	if (status != CH_BUS_OK)
		ch_warn("a password hash upgrade was not stored; it is retried at next login");
}

static void login_verified(struct api_op *op, struct ch_conn *c)
{
	struct ch_worker *w = op->w;
	const struct ch_config *cfg = w->cfg;

	if (op->result != 1) {
		uint32_t retry;
		/* Count the failure against the account (the answer for this
		 * attempt is 401 either way). */
		ch_limit_hit(&w->api->per_user, op->user, w->now_ms, &retry);
		finish_error(w, c, 401, "invalid_credentials", "wrong username or password");
		return;
	}
	ch_limit_reset(&w->api->per_user, op->user);
	if (op->new_hash[0]) {
		struct ch_payload_writer pw;
		if (ch_bus_begin(w->bus, &pw, 1024) == 0) {
			ch_payload_put_str(&pw, op->user);
			ch_payload_put_str(&pw, op->hash);
			ch_payload_put_str(&pw, op->new_hash);
			ch_bus_send(w->bus, CH_REQ_SET_PASSWORD, &pw, w, NULL, password_saved, NULL);
		}
	}
	char token[CH_TOKEN_SIZE];
	int64_t iat = now_s();
	int64_t life = (int64_t)(cfg->token_lifetime_ms / 1000);
	if (ch_token_create(w->api->key, sizeof(w->api->key), op->user, iat, life, token,
			    sizeof(token)) < 0) {
		finish_error(w, c, 500, "internal", "could not make a token");
		return;
	}
	struct ch_buf b;
	ch_buf_init(&b);
	ch_buf_puts(&b, "{\"token\":");
	ch_json_str(&b, token, strlen(token));
	ch_buf_puts(&b, ",\"expires_at\":");
	ch_buf_u64(&b, (uint64_t)(iat + life) * 1000);
	ch_buf_puts(&b, "}");
	if (b.failed)
		finish_error(w, c, 500, "internal", "out of memory");
	else
		finish(w, c, 200, b.p, b.len, "Cache-Control: no-store\r\n");
	ch_buf_free(&b);
}

static void login_user_found(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			     struct ch_payload_reader *rd)
{
	struct api_op *op = ctx;
	if (!c) {
		op_free(op);
		return;
	}
	if (status == CH_BUS_OK) {
		ch_payload_get_str(rd, op->hash, sizeof(op->hash));
		if (ch_payload_reader_finish(rd) < 0)
			op->hash[0] = '\0';
	} else if (status != CH_BUS_NO_SUCH_USER) {
		op_free(op);
		bus_error(w, c, status);
		return;
	}
	if (submit(w, c, op, job_verify) < 0)
		ch_http_conn_resume(w, c);
}

void ch_api_login(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	size_t ul, pl;
	(void)path;

	const char *user, *pass;
	cJSON *root = read_credentials(w, c, r, &user, &ul, &pass, &pl);
	if (!root)
		return;
	if (ip_limited(w, c)) {
		cJSON_Delete(root);
		return;
	}
	/* Names and passwords that could never have been registered fail
	 * like a wrong password: the answer must not tell which was wrong. */
	if (!user || !pass || !ch_valid_username(user, ul) || pl > CH_PASSWORD_MAX) {
		ch_respond_error(w, c, 401, "invalid_credentials", "wrong username or password");
		cJSON_Delete(root);
		return;
	}
	uint32_t retry;
	if (!ch_limit_check(&w->api->per_user, user, w->now_ms, &retry)) {
		refuse_429(w, c, retry, "too many failed logins for this account; retry later");
		cJSON_Delete(root);
		return;
	}
	struct api_op *op = op_new(w, c, API_LOGIN);
	struct ch_payload_writer pw;
	if (!op || ch_bus_begin(w->bus, &pw, 64) < 0) {
		free(op);
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
		cJSON_Delete(root);
		return;
	}
	memcpy(op->user, user, ul + 1);
	memcpy(op->password, pass, pl + 1);
	cJSON_Delete(root);
	ch_payload_put_str(&pw, op->user);
	if (ch_bus_send(w->bus, CH_REQ_GET_USER, &pw, w, c, login_user_found, op) < 0) {
		op_free(op);
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
	}
}

/* ---------------------------------------------------------------------- */
/* Rooms                                                                  */

static void rooms_listed(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			 struct ch_payload_reader *rd)
{
	size_t len;
	(void)ctx;
	if (!c)
		return;
	if (status != CH_BUS_OK) {
		bus_error(w, c, status);
		return;
	}
	const uint8_t *body = ch_payload_get_bytes(rd, &len);
	if (ch_payload_reader_finish(rd) < 0) {
		finish_error(w, c, 500, "internal", "malformed answer from the journal");
		return;
	}
	finish(w, c, 200, (const char *)body, len, NULL);
}

void ch_api_rooms(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	char user[CH_USERNAME_MAX + 1];
	struct ch_payload_writer pw;
	(void)path;

	if (!ch_api_auth(w, c, r, user, sizeof(user)))
		return;
	if (ch_bus_begin(w->bus, &pw, 64) < 0) {
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
		return;
	}
	ch_payload_put_str(&pw, user);
	if (ch_bus_send(w->bus, CH_REQ_LIST_ROOMS, &pw, w, c, rooms_listed, NULL) < 0)
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
}

static void room_created(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
			 struct ch_payload_reader *rd)
{
	(void)ctx;
	if (!c)
		return;
	if (status == CH_BUS_UNKNOWN_USER) {
		char name[CH_NAME_MAX + 1], msg[128];
		ch_payload_get_str(rd, name, sizeof(name));
		snprintf(msg, sizeof(msg), "no user named '%s'", name);
		finish_error(w, c, 400, "unknown_user", msg);
		return;
	}
	if (status != CH_BUS_OK) {
		bus_error(w, c, status);
		return;
	}
	static const char ok[] = "{\"ok\":true}";
	finish(w, c, 201, ok, sizeof(ok) - 1, NULL);
}

void ch_api_room(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	char user[CH_USERNAME_MAX + 1];
	struct ch_payload_writer pw;
	size_t il;
	(void)path;

	if (!ch_api_auth(w, c, r, user, sizeof(user)))
		return;
	cJSON *root = parse_object(w, c, r);
	if (!root)
		return;
	const char *id = json_string(root, "id", &il);
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "participants");
	int n = cJSON_GetArraySize(parts);
	if (!id || !ch_valid_room_id(id, il) || strncmp(id, "dm:", 3) == 0) {
		/* dm: rooms are made by the server for direct messages only. */
		ch_respond_error(w, c, 400, "invalid_room",
				 "a room id is 1 to 64 of A-Z a-z 0-9 _ . : - (not starting dm:)");
		goto out;
	}
	if (parts && !cJSON_IsArray(parts)) {
		ch_respond_error(w, c, 400, "bad_request", "participants must be an array of usernames");
		goto out;
	}
	if (n > w->cfg->max_participants) {
		ch_respond_error(w, c, 403, "limit_reached", "too many participants");
		goto out;
	}
	const cJSON *p;
	cJSON_ArrayForEach(p, parts) {
		if (!cJSON_IsString(p)) {
			ch_respond_error(w, c, 400, "bad_request",
					 "participants must be an array of usernames");
			goto out;
		}
		if (!ch_valid_username(p->valuestring, strlen(p->valuestring))) {
			char msg[128];
			snprintf(msg, sizeof(msg), "no user named '%.40s'", p->valuestring);
			ch_respond_error(w, c, 400, "unknown_user", msg);
			goto out;
		}
	}
	if (ch_bus_begin(w->bus, &pw, 128 + (uint32_t)n * 40) < 0) {
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
		goto out;
	}
	ch_payload_put_str(&pw, user);
	ch_payload_put_str(&pw, id);
	ch_payload_put_u32(&pw, (uint32_t)n);
	cJSON_ArrayForEach(p, parts)
		ch_payload_put_str(&pw, p->valuestring);
	if (ch_bus_send(w->bus, CH_REQ_CREATE_ROOM, &pw, w, c, room_created, NULL) < 0)
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
out:
	cJSON_Delete(root);
}

/* ---------------------------------------------------------------------- */
/* Send                                                                   */

static void sent(struct ch_worker *w, struct ch_conn *c, void *ctx, uint32_t status,
		 struct ch_payload_reader *rd)
{
	(void)ctx;
	if (!c)
		return;
	if (status != CH_BUS_OK) {
		bus_error(w, c, status);
		return;
	}
	uint64_t seq = ch_payload_get_u64(rd);
	uint64_t ts = ch_payload_get_u64(rd);
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"ok\":true,\"seq\":%llu,\"ts\":%llu}",
			 (unsigned long long)seq, (unsigned long long)ts);
	finish(w, c, 200, body, (size_t)n, NULL);
}

void ch_api_send(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	char user[CH_USERNAME_MAX + 1];
	struct ch_payload_writer pw;
	size_t rl, cl, il = 0;
	(void)path;

	if (!ch_api_auth(w, c, r, user, sizeof(user)))
		return;
	cJSON *root = parse_object(w, c, r);
	if (!root)
		return;
	const char *room = json_string(root, "room", &rl);
	const char *content = json_string(root, "content", &cl);
	const cJSON *idv = cJSON_GetObjectItemCaseSensitive(root, "id");
	const char *id = "";
	if (idv && !cJSON_IsNull(idv)) {
		id = cJSON_IsString(idv) ? idv->valuestring : NULL;
		il = id ? strlen(id) : 0;
	}
	if (!room || !content) {
		ch_respond_error(w, c, 400, "bad_request", "room and content must be strings");
	} else if (!id || il > CH_CLIENT_ID_MAX) {
		ch_respond_error(w, c, 400, "bad_request", "id must be a string of at most 128 bytes");
	} else if (cl > w->cfg->max_message_bytes) {
		ch_respond_error(w, c, 413, "too_large", "the message is over max_message_bytes");
	} else if (!ch_valid_room_id(room, rl)) {
		ch_respond_error(w, c, 404, "no_such_room", "no such room");
	} else if (ch_bus_begin(w->bus, &pw, (uint32_t)(cl + il + 256)) < 0) {
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
	} else {
		ch_payload_put_str(&pw, user);
		ch_payload_put_str(&pw, room);
		ch_payload_put_str(&pw, id);
		ch_payload_put_bytes(&pw, content, cl);
		if (ch_bus_send(w->bus, CH_REQ_SEND, &pw, w, c, sent, NULL) < 0)
			ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
	}
	cJSON_Delete(root);
}

/* ---------------------------------------------------------------------- */
/* History                                                                */

static void job_history(struct ch_job *job)
{
	struct api_op *op = CH_POOL_CONTAINER_OF(job, struct api_op, job);
	ch_sched_latency();	/* history reads are requests waiting too */
	struct ch_logread *lr = ch_logread_thread(op->w->api->log_dir);
	void *buf = malloc(CH_RECORD_MAX);

	op->result = -1;
	if (!lr || !buf)
		goto out;
	ch_buf_puts(&op->out, "[");
	for (uint32_t i = 0; i < op->n_pos; i++) {
		struct ch_record rec;
		struct ch_message m;
		if (ch_logread_at(lr, op->pos[i], buf, CH_RECORD_MAX, &rec) < 0 ||
		    ch_message_decode(&rec, &m) < 0)
			goto out;
		if (i)
			ch_buf_puts(&op->out, ",");
		ch_msg_json(&op->out, 0, m.room, m.room_len, rec.room_seq, m.from, m.from_len,
			    m.content, m.content_len, rec.ts_ms, m.id, m.id_len);
	}
	ch_buf_puts(&op->out, "]");
	op->result = op->out.failed ? -1 : 0;
out:
	if (op->result < 0)
		ch_err("history: reading %u records from %s failed", op->n_pos, op->w->api->log_dir);
	free(buf);
}

/* Ring entries up to this size are copied onto the loop's stack; a page
 * with a bigger message comes from the log. */
#define CH_API_RING_ENTRY_MAX 8192

/*
 * A page whose messages are all still in the room's ring is built from the
 * frames the members were sent, on the loop: no pool thread, no read of
 * the log. Anything amiss (the ring now serves another room, an entry was
 * overwritten, is missing or too big for the buffer) leaves the page to
 * the log. Returns 0 when the page is in op->out.
 */
static int history_from_ring(struct ch_worker *w, struct api_op *op, uint32_t ring,
			     uint32_t room_id, uint64_t floor, uint64_t top)
{
	uint8_t entry[CH_API_RING_ENTRY_MAX];
	uint32_t offs[CH_API_HISTORY_MAX + 1];
	struct ch_buf els;
	uint64_t cursor, seq = top - op->n_pos + 1;
	uint32_t n = 0;

	if (ring >= ch_shm_header(w->shm)->n_rings || top < op->n_pos)
		return -1;
	/* Acquire pairs with the journal's release store once it has reset
	 * the ring for the room; a later reset shows in ch_mring_read(). */
	if (atomic_load_explicit(&ch_shm_room(w->shm, ring)->room_id, memory_order_acquire) !=
	    room_id)
		return -1;
	const struct ch_mring *r = ch_shm_ring(w->shm, ring);
	if (ch_mring_find(r, seq, floor, &cursor) < 0)
		return -1;
	ch_buf_init(&els);
	for (; n < op->n_pos; n++, seq++) {
		uint32_t len;
		uint64_t tag;
		offs[n] = (uint32_t)els.len;
		if (ch_mring_read(r, &cursor, entry, sizeof(entry), &len, &tag) != CH_MRING_OK ||
		    tag != seq || ch_msg_frame_history(&els, entry, len) < 0)
			break;
	}
	offs[n] = (uint32_t)els.len;
	if (n == op->n_pos && !els.failed) {
		/* The ring is oldest first, a page newest first. */
		ch_buf_puts(&op->out, "[");
		for (uint32_t i = n; i-- > 0;) {
			if (i + 1 < n)
				ch_buf_puts(&op->out, ",");
			ch_buf_append(&op->out, els.p + offs[i], offs[i + 1] - offs[i]);
		}
		ch_buf_puts(&op->out, "]");
	}
	ch_buf_free(&els);
	if (n < op->n_pos || op->out.failed) {
		op->out.len = 0;
		op->out.failed = 0;
		return -1;
	}
	return 0;
}

static void history_positions(struct ch_worker *w, struct ch_conn *c, void *ctx,
			      uint32_t status, struct ch_payload_reader *rd)
{
	struct api_op *op = ctx;
	if (!c) {
		op_free(op);
		return;
	}
	if (status != CH_BUS_OK) {
		op_free(op);
		bus_error(w, c, status);
		return;
	}
	op->n_pos = ch_payload_get_u32(rd);
	if (rd->failed || op->n_pos > CH_API_HISTORY_MAX ||
	    !(op->pos = calloc(op->n_pos ? op->n_pos : 1, sizeof(uint64_t)))) {
		op_free(op);
		finish_error(w, c, 500, "internal", "malformed answer from the journal");
		return;
	}
	for (uint32_t i = 0; i < op->n_pos; i++)
		op->pos[i] = ch_payload_get_u64(rd);
	uint32_t ring = ch_payload_get_u32(rd), room_id = ch_payload_get_u32(rd);
	uint64_t floor = ch_payload_get_u64(rd), top = ch_payload_get_u64(rd);
	if (op->n_pos == 0) {
		op_free(op);
		finish(w, c, 200, "[]", 2, NULL);
		return;
	}
	if (!rd->failed && ring != CH_HISTORY_NO_RING &&
	    history_from_ring(w, op, ring, room_id, floor, top) == 0) {
		CH_STAT_ADD(w->stats, history_ring, 1);
		finish(w, c, 200, op->out.p, op->out.len, NULL);
		op_free(op);
		return;
	}
	CH_STAT_ADD(w->stats, history_log, 1);
	if (submit(w, c, op, job_history) < 0)
		ch_http_conn_resume(w, c);
}

/* A query parameter as a whole number in [min, max]; def when absent. */
static int query_number(const struct ch_str *q, const char *name, uint64_t def, uint64_t min,
			uint64_t max, uint64_t *out)
{
	struct ch_str v;
	uint64_t n = 0;

	*out = def;
	if (!ch_http_query_param(*q, name, &v))
		return 0;
	if (v.len == 0 || v.len > 18)
		return -1;
	for (size_t k = 0; k < v.len; k++) {
		if (v.p[k] < '0' || v.p[k] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v.p[k] - '0');
	}
	if (n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

void ch_api_history(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	char user[CH_USERNAME_MAX + 1];
	const char *room = path + strlen("/api/history/");
	uint64_t limit, before;
	struct ch_payload_writer pw;

	if (!ch_api_auth(w, c, r, user, sizeof(user)))
		return;
	if (query_number(&r->http.query, "limit", CH_API_HISTORY_DEFAULT, 1, CH_API_HISTORY_MAX,
			 &limit) < 0) {
		ch_respond_error(w, c, 400, "invalid_limit", "limit must be a number from 1 to 500");
		return;
	}
	if (query_number(&r->http.query, "before", 0, 1, UINT64_MAX >> 1, &before) < 0) {
		ch_respond_error(w, c, 400, "invalid_before", "before must be a positive seq");
		return;
	}
	if (!ch_valid_room_id(room, strlen(room))) {
		ch_respond_error(w, c, 404, "no_such_room", "no such room");
		return;
	}
	struct api_op *op = op_new(w, c, API_HISTORY);
	if (!op || ch_bus_begin(w->bus, &pw, 128) < 0) {
		free(op);
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
		return;
	}
	ch_payload_put_str(&pw, user);
	ch_payload_put_str(&pw, room);
	ch_payload_put_u64(&pw, before);
	ch_payload_put_u32(&pw, (uint32_t)limit);
	if (ch_bus_send(w->bus, CH_REQ_HISTORY, &pw, w, c, history_positions, op) < 0) {
		op_free(op);
		ch_respond_error(w, c, 503, "unavailable", "the server is busy; retry");
	}
}

/* ---------------------------------------------------------------------- */
/* Pool completions                                                       */

static void job_done(struct ch_job *job)
{
	struct api_op *op = CH_POOL_CONTAINER_OF(job, struct api_op, job);
	struct ch_conn *c = job->cancelled ? NULL : op_conn(op);

	if (c) {
		switch (op->kind) {
		case API_REGISTER:
			register_hashed(op, c);
			break;
		case API_LOGIN:
			login_verified(op, c);
			break;
		case API_HISTORY:
			if (op->result < 0)
				finish_error(op->w, c, 500, "internal", "could not read the history");
			else
				finish(op->w, c, 200, op->out.p, op->out.len, NULL);
			break;
		}
	}
	op_free(op);
}

void ch_api_shutdown(struct ch_worker *w)
{
	/* Queued hashes are not run; every job comes back to job_done, which
	 * frees it (its connection is gone by now). */
	ch_pool_destroy(w->io_pool, job_done);
	ch_pool_destroy(w->pool, job_done);
	w->io_pool = w->pool = NULL;
	free(w->api);
	w->api = NULL;
}

void ch_api_pool_done(struct ch_worker *w)
{
	ch_pool_reap(w->io_pool, job_done);
	ch_pool_reap(w->pool, job_done);
	CH_STAT_SET(w->stats, hash_queue, ch_pool_queue_depth(w->pool));
}

/* ---------------------------------------------------------------------- */
/* Metrics                                                                */

/* One metric in the text format; counters get the _total suffix. The
 * per-class response counters are printed as one labelled family instead. */
static void metric_line(struct ch_buf *b, const char *name, const char *kind, const char *help,
			uint64_t v)
{
	int counter = strcmp(kind, "counter") == 0;
	if (strncmp(name, "responses_", 10) == 0)
		return;
	ch_buf_printf(b, "# HELP chatd_%s%s %s\n# TYPE chatd_%s%s %s\nchatd_%s%s %llu\n", name,
		      counter ? "_total" : "", help, name, counter ? "_total" : "", kind, name,
		      counter ? "_total" : "", (unsigned long long)v);
}

void ch_api_metrics(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path)
{
	const struct ch_shm *shm = w->shm;
	int procs[2 + CH_MAX_WORKERS];
	int n = 0;
	struct ch_buf b;
	(void)r;
	(void)path;

	procs[n++] = CH_SHM_PROC_MASTER;
	procs[n++] = CH_SHM_PROC_JOURNAL;
	for (int i = 0; i < w->cfg->workers; i++)
		procs[n++] = CH_SHM_PROC_WORKER(i);
	ch_buf_init(&b);
	/* Sums over every process's block, read with relaxed loads: each
	 * counter is exact, the set is not one instant (nor need it be). */
#define CH_METRIC(name, kind, help)                                                         \
	do {                                                                                 \
		uint64_t sum = 0;                                                            \
		for (int i = 0; i < n; i++)                                                  \
			sum += CH_STAT_GET(ch_shm_stats(shm, procs[i]), name);              \
		metric_line(&b, #name, #kind, help, sum);                                    \
	} while (0);
	CH_STATS_FIELDS(CH_METRIC)
#undef CH_METRIC
	ch_buf_puts(&b, "# HELP chatd_http_responses_total HTTP responses by status class\n"
			"# TYPE chatd_http_responses_total counter\n");
	for (int k = 0; k < 4; k++) {
		uint64_t sum = 0;
		for (int i = 0; i < n; i++) {
			const struct ch_stats *st = ch_shm_stats(shm, procs[i]);
			sum += k == 0 ? CH_STAT_GET(st, responses_2xx) :
			       k == 1 ? CH_STAT_GET(st, responses_3xx) :
			       k == 2 ? CH_STAT_GET(st, responses_4xx) : CH_STAT_GET(st, responses_5xx);
		}
		ch_buf_printf(&b, "chatd_http_responses_total{class=\"%dxx\"} %llu\n", k + 2,
			      (unsigned long long)sum);
	}
	const struct ch_stats *js = ch_shm_stats(shm, CH_SHM_PROC_JOURNAL);
	uint64_t cum = 0;
	ch_buf_puts(&b, "# HELP chatd_journal_fsync_seconds Time spent in one fdatasync of the log\n"
			"# TYPE chatd_journal_fsync_seconds histogram\n");
	for (int k = 0; k < CH_FSYNC_BUCKETS; k++) {
		cum += CH_STAT_GET(js, fsync_bucket[k]);
		if (k < CH_FSYNC_BUCKETS - 1)
			ch_buf_printf(&b, "chatd_journal_fsync_seconds_bucket{le=\"%g\"} %llu\n",
				      (double)(100ull << k) / 1e6, (unsigned long long)cum);
	}
	ch_buf_printf(&b, "chatd_journal_fsync_seconds_bucket{le=\"+Inf\"} %llu\n",
		      (unsigned long long)cum);
	ch_buf_printf(&b, "chatd_journal_fsync_seconds_sum %g\n",
		      (double)CH_STAT_GET(js, journal_fsync_us) / 1e6);
	ch_buf_printf(&b, "chatd_journal_fsync_seconds_count %llu\n", (unsigned long long)cum);
	ch_buf_printf(&b, "# HELP chatd_workers Worker processes configured\n"
			  "# TYPE chatd_workers gauge\nchatd_workers %d\n", w->cfg->workers);
	if (b.failed)
		ch_respond_error(w, c, 500, "internal", "out of memory");
	else
		ch_respond(w, c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len,
			   "Cache-Control: no-store\r\n");
	ch_buf_free(&b);
}
