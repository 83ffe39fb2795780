/*
 * Uploaded files in an S3-compatible store: see store_s3.h.
 */
#define _GNU_SOURCE
#include "worker/store_s3.h"

#include "common/log.h"

#include <errno.h>
#include <libs3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ch_store_s3 {
	const struct ch_config *cfg;
	char secret[CH_S3_SECRET_MAX];
	S3BucketContext bucket;
};

/* One request's outcome, filled by libs3's callbacks. */
struct s3_call {
	S3Status status;
	char error[192];	/* the service's message, if it sent one */
	int fd;			/* put: the file being sent */
	int read_failed;
};

static int s3_initialized;	/* S3_initialize is once per process; loop thread only */

static S3Status on_properties(const S3ResponseProperties *p, void *data)
{
	(void)p;
	(void)data;
	return S3StatusOK;
}

static void on_complete(S3Status status, const S3ErrorDetails *e, void *data)
{
	struct s3_call *call = data;

	call->status = status;
	call->error[0] = '\0';
	if (e && e->message)
		snprintf(call->error, sizeof(call->error), "%s", e->message);
}

static int on_put_data(int size, char *buf, void *data)
{
	struct s3_call *call = data;
	ssize_t n;

	do
		n = read(call->fd, buf, (size_t)size);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		call->read_failed = 1;
		return -1;	/* libs3 aborts the request */
	}
	return (int)n;
}

/* libs3 names statuses "ErrorNoSuchBucket"; the service's code is the rest. */
static const char *s3_code(S3Status status)
{
	const char *name = S3_get_status_name(status);
	return strncmp(name, "Error", 5) == 0 && name[5] ? name + 5 : name;
}

static void s3_fail(struct ch_store_err *err, const char *what, const struct s3_call *call)
{
	char msg[sizeof(err->message)];

	snprintf(msg, sizeof(msg), "S3 %s failed: %s%s%s", what, s3_code(call->status),
		 call->error[0] ? ": " : "", call->error);
	ch_store_set_err(err, 502, "storage_error", msg);
	ch_err("%s", msg);
}

static int read_secret(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	if (!f) {
		ch_err("S3 secret_key_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!fgets(out, (int)len, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	if (!out[0]) {
		ch_err("S3 secret_key_file %s is empty", path);
		return -1;
	}
	return 0;
}

struct ch_store_s3 *ch_store_s3_open(const struct ch_config *cfg)
{
	struct ch_store_s3 *s3 = calloc(1, sizeof(*s3));

	if (!s3)
		return NULL;
	if (!cfg->s3_endpoint[0] || !cfg->s3_bucket[0]) {
		ch_err("[uploads] backend = s3 needs [s3] endpoint and bucket");
		goto fail;
	}
	if (cfg->s3_secret_key_file[0] &&
	    read_secret(cfg->s3_secret_key_file, s3->secret, sizeof(s3->secret)) < 0)
		goto fail;
	if (!s3_initialized) {
		S3Status st = S3_initialize(CH_S3_USER_AGENT, S3_INIT_ALL, cfg->s3_endpoint);
		if (st != S3StatusOK) {
			ch_err("S3_initialize: %s", S3_get_status_name(st));
			goto fail;
		}
		s3_initialized = 1;
	}
	s3->cfg = cfg;
	s3->bucket = (S3BucketContext){
		.hostName = cfg->s3_endpoint,
		.bucketName = cfg->s3_bucket,
		.protocol = cfg->s3_protocol == CH_S3_HTTPS ? S3ProtocolHTTPS : S3ProtocolHTTP,
		.uriStyle = cfg->s3_style == CH_S3_VIRTUAL ? S3UriStyleVirtualHost
							   : S3UriStylePath,
		.accessKeyId = cfg->s3_access_key,
		.secretAccessKey = s3->secret,
	};
	return s3;
fail:
	free(s3);
	return NULL;
}

void ch_store_s3_close(struct ch_store_s3 *s3)
{
	if (!s3)
		return;
	explicit_bzero(s3->secret, sizeof(s3->secret));
	free(s3);
}

static void create_bucket(struct ch_store_s3 *s3, struct s3_call *call)
{
	S3ResponseHandler h = { on_properties, on_complete };
	const struct ch_config *cfg = s3->cfg;

	call->status = S3StatusInternalError;
	S3_create_bucket(s3->bucket.protocol, s3->bucket.accessKeyId, s3->secret,
			 cfg->s3_endpoint, cfg->s3_bucket, S3CannedAclPrivate,
			 cfg->s3_region[0] ? cfg->s3_region : NULL, NULL, &h, call);
	if (call->status == S3StatusOK)
		ch_info("S3: created bucket %s", cfg->s3_bucket);
}

static void put_once(struct ch_store_s3 *s3, const struct ch_store_meta *meta,
		     struct s3_call *call)
{
	S3NameValue md[] = { { "owner", meta->owner }, { "sha256", meta->sha256 } };
	S3PutProperties props = {
		.contentType = meta->type,
		.contentDispositionFilename = meta->name,
		.expires = -1,
		.cannedAcl = S3CannedAclPrivate,
		.metaDataCount = (int)(sizeof(md) / sizeof(md[0])),
		.metaData = md,
	};
	S3PutObjectHandler h = { { on_properties, on_complete }, on_put_data };

	call->status = S3StatusInternalError;
	call->read_failed = 0;
	if (lseek(call->fd, 0, SEEK_SET) < 0)
		return;
	S3_put_object(&s3->bucket, meta->id, meta->size, &props, NULL, &h, call);
}

int ch_store_s3_put(struct ch_store_s3 *s3, int fd, const struct ch_store_meta *meta,
		    struct ch_store_err *err)
{
	struct s3_call call = { .fd = fd };
	int created = 0;

	for (int tries = 0; tries <= CH_S3_RETRIES; tries++) {
		put_once(s3, meta, &call);
		if (call.status == S3StatusErrorNoSuchBucket && s3->cfg->s3_create_bucket &&
		    !created) {
			struct s3_call mk = { 0 };
			create_bucket(s3, &mk);
			created = 1;
			if (mk.status != S3StatusOK) {
				s3_fail(err, "create bucket", &mk);
				return -1;
			}
			tries--;	/* the put after a create is not a retry */
			continue;
		}
		if (call.status == S3StatusOK || !S3_status_is_retryable(call.status) ||
		    call.read_failed)
			break;
	}
	if (call.status != S3StatusOK) {
		s3_fail(err, "put", &call);
		return -1;
	}
	return 0;
}

int ch_store_s3_url(struct ch_store_s3 *s3, const char *id, int64_t expires_s, char *out,
		    size_t len)
{
	char buf[S3_MAX_AUTHENTICATED_QUERY_STRING_SIZE];
	const char *pub = s3->cfg->s3_public_url;
	int n;

	if (pub[0]) {
		size_t pl = strlen(pub);
		n = snprintf(out, len, "%s%s%s", pub, pub[pl - 1] == '/' ? "" : "/", id);
		return n > 0 && (size_t)n < len ? 0 : -1;
	}
	/* The expiry is an absolute Unix time (FACTS.md: a relative one is
	 * already in the past for the service). */
	if (S3_generate_authenticated_query_string(buf, &s3->bucket, id, expires_s, NULL) !=
	    S3StatusOK)
		return -1;
	n = snprintf(out, len, "%s", buf);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

int ch_store_s3_remove(struct ch_store_s3 *s3, const char *id)
{
	S3ResponseHandler h = { on_properties, on_complete };
	struct s3_call call = { .status = S3StatusInternalError };

	S3_delete_object(&s3->bucket, id, NULL, &h, &call);
	if (call.status != S3StatusOK) {
		ch_err("S3 delete %s: %s%s%s", id, s3_code(call.status), call.error[0] ? ": " : "",
		       call.error);
		return -1;
	}
	return 0;
}
