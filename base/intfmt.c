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

int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, va_list ap);
int __wrap___snprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *format, ...);

/* v in decimal at s (room for 21 bytes); its length */
static int format_lld(char *s, long long v)
{
	char digits[20];
	int n = 0;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	int len = 0;
	if (v < 0)
		s[len++] = '-';
	while (n)
		s[len++] = digits[--n];
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
		n = format_lld(s, va_arg(ap, long long));
	else
		n = __vsnprintf_chk(s, maxlen, flag, slen, format, ap);
	va_end(ap);
	return n;
}
