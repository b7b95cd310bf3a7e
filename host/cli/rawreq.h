/* The raw request text format `rotator sign` and the SigV4 unit test share (rawreq.c):
 * the public SigV4 test suite's request.txt
 * ("METHOD target HTTP/1.1", "Name:value" header lines, lines starting with a space or tab
 * continuing the previous value, a blank line, the body) and its *-signed-request.txt. */
#ifndef ROTATOR_CLI_RAWREQ_H
#define ROTATOR_CLI_RAWREQ_H

#include <stdio.h>
#include <time.h>

#include "aws/sigv4.h"

typedef struct {
  char *buf;        /* owned copy of the text; every pointer below points into it */
  const char *version;           /* "HTTP/1.1" */
  sigv4_header headers[SIGV4_MAX_HEADERS]; /* values raw: leading space, folded lines */
  sigv4_request req; /* method, path, query (NULL without '?'), headers, body */
} rawreq;

/* Parses len bytes of text (CRLF or LF lines). On failure returns -1 with *err set to a
 * static description and leaves nothing to free. */
int rawreq_parse(const char *text, size_t len, rawreq *rq, const char **err);
void rawreq_free(rawreq *rq);
/* Reads all of f (at most 16 MiB) and parses it; 0, or -1 with *err set as above. */
int rawreq_read(FILE *f, rawreq *rq, const char **err);

/* Writes rq signed with out (from sigv4_sign with the same cred/params) in the suite's
 * signed-request format: header mode appends X-Amz-Security-Token, X-Amz-Date,
 * x-amz-content-sha256 and Authorization lines; presign mode extends the request target's
 * query. Returns 0, or -1 on a write error. */
int rawreq_write_signed(FILE *f, const rawreq *rq, const sigv4_credentials *cred,
                        const sigv4_params *params, const sigv4_output *out);

/* Parses "2015-08-30T12:36:00Z" (UTC, the 'T' and 'Z' required; util/timefmt.h does
 * the work); returns 0 or -1. */
int parse_iso8601_utc(const char *s, time_t *t);

#endif
