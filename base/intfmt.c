/* intfmt.c — integers to text without printf's machinery, where the embedded Lua asks for
 * it most. Lua turns an integer into a string (`"t" .. i`, tostring(i), a table key
 * printed) through snprintf(buf, 44, "%lld", i); Debian builds Lua with _FORTIFY_SOURCE,
 * so that call is __snprintf_chk, and a million-task recipe makes millions of them: in a
 * plan of a million tasks named "t" .. i, a fifth of all instructions went to formatting
 * their integers. The link wraps __snprintf_chk (CMakeLists.txt: --wrap) with the function
 * below: the exact format "%lld" with room for any long long is written here, digit by
 * digit; every other call goes on to glibc's __vsnprintf_chk unchanged, checks included.
 * Where Lua is not linked from the archive, nothing calls this and nothing changes. */
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include "intfmt.h"

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, va_list ap);
int __wrap___snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

/* "00" to "99": two digits a step, from the last */
static const char pairs[] = "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849"
			    "5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

int intfmt_lld(char *s, long long v)
{
	char digits[24];
	char *end = digits + sizeof digits, *p = end;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	while (u >= 100) {
		unsigned r = (unsigned)(u % 100);
		u /= 100;
		p -= 2;
		memcpy(p, pairs + 2 * r, 2);
	}
	if (u >= 10) {
		p -= 2;
		memcpy(p, pairs + 2 * u, 2);
	} else {
		*--p = (char)('0' + u);
	}
	if (v < 0)
		*--p = '-';
	int len = (int)(end - p);
	memcpy(s, p, (size_t)len);
	s[len] = 0;
	return len;
}

int __wrap___snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int n;
	if (maxlen >= 21 && slen >= maxlen && format[0] == '%' && format[1] == 'l' && format[2] == 'l' &&
	    format[3] == 'd' && !format[4])
		n = intfmt_lld(s, va_arg(ap, long long));
	else
		n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	va_end(ap);
	return n;
}
