/* The text of the first <tag>...</tag> in an XML document (util/xml_get.c). */
#ifndef ROTATOR_XML_GET_H
#define ROTATOR_XML_GET_H
#include <stddef.h>

#define XML_GET_TOO_LONG (-2)

/* Surrounding whitespace trimmed; &amp; &lt; &gt; &quot; &apos; decoded. 0; -1 when the
 * element is missing; XML_GET_TOO_LONG when the text does not fit in outlen (out then
 * holds the NUL-terminated prefix). */
int xml_get(const char *xml, size_t len, const char *tag, char *out, size_t outlen);

#endif
