/*
 * The REST API of PROTOCOL.md on a worker: register, login, rooms, room,
 * send, history, and /metrics. Handlers run on the loop and never block:
 * password hashing and history reads go to the worker's thread pool, state
 * lives in the journal and is asked for over the bus, and each answer
 * resumes the connection where it waited.
 */
#ifndef CH_API_H
#define CH_API_H

#include "worker/http_conn.h"

#define CH_API_HISTORY_DEFAULT 50
#define CH_API_HISTORY_MAX 500
#define CH_API_TOKEN_CACHE 256		/* verified tokens remembered per worker */
/* A hash waiting or running this long means hashing is starved of CPU. */
#define CH_API_HASH_STALL_MS 250

/* Load the token key and set up the limits. */
int ch_api_init(struct ch_worker *w);

/* Stop the pools and free what the API holds (the worker is exiting). */
void ch_api_shutdown(struct ch_worker *w);

/* Every worker tick: keep hashing from starving on a saturated machine. */
void ch_api_tick(struct ch_worker *w);

/* The pool's eventfd fired: finish the jobs that are done. */
void ch_api_pool_done(struct ch_worker *w);

/* The user a token names: CH_TOKEN_OK (0) or why not (common/auth.h). */
int ch_api_token_user(struct ch_worker *w, const char *token, char *user, size_t len);

/* The user a request's token names: from "Authorization: Bearer", or, when
 * allow_query (WebSocket upgrades: browsers cannot set the header), from
 * ?token=. CH_TOKEN_OK (0) or why not. */
int ch_api_request_user(struct ch_worker *w, const struct ch_req *r, int allow_query,
			char *user, size_t len);

/* The user a request's token names, or NULL after answering 401. */
const char *ch_api_auth(struct ch_worker *w, struct ch_conn *c, struct ch_req *r,
			char *user, size_t len);

void ch_api_register(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_login(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_rooms(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_room(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_send(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_history(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);
void ch_api_metrics(struct ch_worker *w, struct ch_conn *c, struct ch_req *r, const char *path);

/* Where the key lives: key_file, or <data_dir>/jwt.key. */
void ch_api_key_path(const struct ch_config *cfg, char *out, size_t len);

#endif
