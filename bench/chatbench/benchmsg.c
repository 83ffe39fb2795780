/*
 * Payloads, frame scanning and response splitting: see benchmsg.h. The
 * scanner is deliberately not a JSON library: it reads a dozen keys of a
 * flat object without building anything, at the speed of a memchr, because
 * chatbench reads every delivery of a run and must not become the
 * bottleneck it measures. Response heads are read with client/httpc.h's
 * pure helpers.
 */
#include "bench/chatbench/benchmsg.h"

#include <stdio.h>
#include <string.h>

#include "client/httpc.h"

#define PAYLOAD_PAD	'x'
#define HTTP_MAX_LEN_DIGITS	12	/* a Content-Length up to 1 TB: no overflow */

size_t ch_bench_payload_make(char *out, size_t cap, size_t size, const struct ch_bench_payload *pl)
{
	char head[CH_BENCH_PAYLOAD_MIN + 8];
	int n = snprintf(head, sizeof(head), "%u.%llu.%u.%llu.", pl->sender,
			 (unsigned long long)pl->counter, pl->round, (unsigned long long)pl->ts);
	if (n < 0 || (size_t)n >= sizeof(head))
		return 0;
	size_t total = size > (size_t)n ? size : (size_t)n;
	if (total > cap)
		return 0;
	memcpy(out, head, (size_t)n);
	memset(out + n, PAYLOAD_PAD, total - (size_t)n);
	return total;
}

/* A decimal field ended by '.'; advances *i past the dot. */
static int field(const char *p, size_t len, size_t *i, uint64_t *out)
{
	uint64_t v = 0;
	size_t start = *i;

	while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
		uint64_t d = (uint64_t)(p[*i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		(*i)++;
	}
	if (*i == start || *i >= len || p[*i] != '.')
		return -1;
	(*i)++;
	*out = v;
	return 0;
}

int ch_bench_payload_parse(const char *p, size_t len, struct ch_bench_payload *pl)
{
	uint64_t f[4];
	size_t i = 0;

	for (int k = 0; k < 4; k++)
		if (field(p, len, &i, &f[k]) < 0)
			return -1;
	if (f[0] > UINT32_MAX || f[2] > UINT32_MAX)
		return -1;
	pl->sender = (uint32_t)f[0];
	pl->counter = f[1];
	pl->round = (uint32_t)f[2];
	pl->ts = f[3];
	return 0;
}

/* ---- JSON frame scanner ------------------------------------------------ */

struct scan {
	const char *p;
	size_t len;
	size_t i;
};

static void ws(struct scan *s)
{
	while (s->i < s->len && (s->p[s->i] == ' ' || s->p[s->i] == '\t' ||
				 s->p[s->i] == '\n' || s->p[s->i] == '\r'))
		s->i++;
}

/* A string at s->i (on its quote): its escaped contents in *str, *n. */
static int string(struct scan *s, const char **str, size_t *n)
{
	if (s->i >= s->len || s->p[s->i] != '"')
		return -1;
	size_t start = ++s->i;
	while (s->i < s->len) {
		char c = s->p[s->i];
		if (c == '\\') {
			s->i += 2;
			continue;
		}
		if (c == '"') {
			*str = s->p + start;
			*n = s->i - start;
			s->i++;
			return 0;
		}
		s->i++;
	}
	return -1;
}

/* Skips a nested object or array, strings inside included. */
static int skip_nested(struct scan *s)
{
	int depth = 0;
	const char *str;
	size_t n;

	while (s->i < s->len) {
		char c = s->p[s->i];
		if (c == '"') {
			if (string(s, &str, &n) < 0)
				return -1;
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (--depth == 0) {
				s->i++;
				return 0;
			}
		}
		s->i++;
	}
	return -1;
}

/* A number or literal: read as an unsigned integer when it is one. */
static int scalar(struct scan *s, uint64_t *num)
{
	size_t start = s->i;
	uint64_t v = 0;
	int digits = 1;

	while (s->i < s->len) {
		char c = s->p[s->i];
		if (c == ',' || c == '}' || c == ' ' || c == '\n' || c == '\r' || c == '\t')
			break;
		if (c >= '0' && c <= '9')
			v = v * 10 + (uint64_t)(c - '0');
		else
			digits = 0;
		s->i++;
	}
	if (s->i == start)
		return -1;
	*num = digits ? v : 0;
	return 0;
}

static enum ch_bench_ftype ftype(const char *t, size_t n)
{
	static const struct {
		const char *name;
		enum ch_bench_ftype type;
	} types[] = {
		{ "msg", CH_BENCH_F_MSG }, { "ack", CH_BENCH_F_ACK },
		{ "joined", CH_BENCH_F_JOINED }, { "error", CH_BENCH_F_ERROR },
		{ "pong", CH_BENCH_F_PONG }, { "truncated", CH_BENCH_F_TRUNCATED },
	};
	for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++)
		if (strlen(types[k].name) == n && memcmp(types[k].name, t, n) == 0)
			return types[k].type;
	return CH_BENCH_F_OTHER;
}

#define KEY_IS(k, kn, lit) ((kn) == sizeof(lit) - 1 && memcmp((k), (lit), (kn)) == 0)

static int member(struct scan *s, struct ch_bench_frame *f, int *have_type)
{
	const char *key, *str;
	size_t kn, n;
	uint64_t num;

	if (string(s, &key, &kn) < 0)
		return -1;
	ws(s);
	if (s->i >= s->len || s->p[s->i] != ':')
		return -1;
	s->i++;
	ws(s);
	if (s->i >= s->len)
		return -1;
	char c = s->p[s->i];
	if (c == '{' || c == '[')
		return skip_nested(s);
	if (c == '"') {
		if (string(s, &str, &n) < 0)
			return -1;
		if (KEY_IS(key, kn, "type")) {
			f->type = ftype(str, n);
			*have_type = 1;
		} else if (KEY_IS(key, kn, "room")) {
			f->room = str;
			f->room_len = n;
		} else if (KEY_IS(key, kn, "content")) {
			f->content = str;
			f->content_len = n;
		} else if (KEY_IS(key, kn, "code")) {
			f->code = str;
			f->code_len = n;
		}
		return 0;
	}
	if (scalar(s, &num) < 0)
		return -1;
	if (KEY_IS(key, kn, "seq"))
		f->seq = num;
	else if (KEY_IS(key, kn, "last_seq"))
		f->last_seq = num;
	return 0;
}

int ch_bench_frame_scan(const char *json, size_t len, struct ch_bench_frame *f)
{
	struct scan s = { json, len, 0 };
	int have_type = 0;

	memset(f, 0, sizeof(*f));
	ws(&s);
	if (s.i >= s.len || s.p[s.i] != '{')
		return -1;
	s.i++;
	ws(&s);
	if (s.i < s.len && s.p[s.i] == '}')
		return -1;	/* {} has no type */
	for (;;) {
		ws(&s);
		if (member(&s, f, &have_type) < 0)
			return -1;
		ws(&s);
		if (s.i >= s.len)
			return -1;
		if (s.p[s.i] == ',') {
			s.i++;
			continue;
		}
		if (s.p[s.i] != '}')
			return -1;
		s.i++;
		break;
	}
	ws(&s);
	return s.i == s.len && have_type ? 0 : -1;
}

/* ---- HTTP response splitting ------------------------------------------- */

int ch_bench_http_response(const char *buf, size_t len, int *status, size_t *total)
{
	size_t head = ch_httpc_head_end(buf, len);
	size_t vlen;

	if (head == 0)
		return len >= CH_HTTPC_MAX_HEAD ? -1 : 0;
	int st = ch_httpc_status(buf, head);
	const char *v = ch_httpc_header(buf, head, "Content-Length", &vlen);
	if (st == 0 || !v || vlen == 0 || vlen > HTTP_MAX_LEN_DIGITS)
		return -1;
	size_t clen = 0;
	for (size_t k = 0; k < vlen; k++) {
		if (v[k] < '0' || v[k] > '9')
			return -1;
		clen = clen * 10 + (size_t)(v[k] - '0');
	}
	if (len < head + clen)
		return 0;
	*status = st;
	*total = head + clen;
	return 1;
}
