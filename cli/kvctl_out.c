/* kvctl_out.c — kvctl's output and input helpers: JSON strings (binary values as base64, since
 * JSON strings cannot carry arbitrary bytes), human sizes, failure messages, and values read
 * from an argument or from stdin (binary-safe, size-checked before any request is sent).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/kvctl.h"

static bool valid_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

bool kvctl_json_str(FILE *f, const void *data, size_t len)
{
	const uint8_t *s = data;
	if (!valid_utf8(s, len))
		return false;
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
	return true;
}

static void base64(FILE *f, const uint8_t *s, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	fputc('"', f);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		fputc(t[(v >> 18) & 63], f);
		fputc(t[(v >> 12) & 63], f);
		fputc(i + 1 < n ? t[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < n ? t[v & 63] : '=', f);
	}
	fputc('"', f);
}

void kvctl_json_bytes(FILE *f, const char *name, const void *data, size_t len)
{
	fprintf(f, "\"%s\": ", name);
	if (kvctl_json_str(f, data, len))
		return;
	/* Not text: say so in the field name, so a reader never mistakes base64 for the value. */
	fprintf(f, "null, \"%s_base64\": ", name);
	base64(f, data, len);
}

const char *kvctl_human_bytes(uint64_t n, char *buf, size_t cap)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, cap, "%.1f %s", v, units[u]);
	return buf;
}

int kvctl_fail(const struct kvctl_args *a, const char *what, int code)
{
	int ex = kvctl_exit_of(code);
	if (code == CLI_UNAVAILABLE)
		fprintf(stderr,
			"kvctl: %s: no node could serve the request within %u ms "
			"(endpoints %s; is the cluster running? try scripts/cluster status)\n",
			what, a->timeout_ms, a->endpoints);
	else if (code == CLI_TIMEOUT)
		fprintf(stderr,
			"kvctl: %s: timed out after %u ms; the outcome is unknown (a write may "
			"or may not have been applied)\n",
			what, a->timeout_ms);
	else
		fprintf(stderr, "kvctl: %s: %s\n", what, cli_strerror(code));
	return ex;
}

int kvctl_read_value(const char *arg, void **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (arg != NULL && strcmp(arg, "-") != 0) {
		size_t n = strlen(arg);
		if (n > CLI_VALUE_MAX) {
			fprintf(stderr, "kvctl: the value is %zu bytes; at most %u are allowed\n",
				n, CLI_VALUE_MAX);
			return KVCTL_EXIT_USAGE;
		}
		*out = malloc(n + 1);
		if (*out == NULL) {
			fprintf(stderr, "kvctl: out of memory\n");
			return KVCTL_EXIT_USAGE;
		}
		memcpy(*out, arg, n + 1);
		*len = n;
		return 0;
	}
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (buf == NULL) {
			fprintf(stderr, "kvctl: out of memory reading stdin\n");
			return KVCTL_EXIT_USAGE;
		}
		if (n == cap) {
			if (cap > CLI_VALUE_MAX) {
				free(buf);
				fprintf(stderr,
					"kvctl: the value on stdin is larger than %u bytes (the "
					"limit)\n",
					CLI_VALUE_MAX);
				return KVCTL_EXIT_USAGE;
			}
			cap *= 2;
			uint8_t *nb = realloc(buf, cap);
			if (nb == NULL)
				free(buf);
			buf = nb;
			continue;
		}
		ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
		if (r < 0) {
			perror("kvctl: reading the value from stdin");
			free(buf);
			return KVCTL_EXIT_USAGE;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > CLI_VALUE_MAX) {
		free(buf);
		fprintf(stderr, "kvctl: the value on stdin is %zu bytes; at most %u are allowed\n",
			n, CLI_VALUE_MAX);
		return KVCTL_EXIT_USAGE;
	}
	*out = buf;
	*len = n;
	return 0;
}
