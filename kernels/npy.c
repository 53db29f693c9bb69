/* npy.c — reading and writing NumPy .npy files as PyTorch users save them
 * (np.save(t.numpy())): little-endian float16/float32/int32/int64, C order. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels.h"

static const struct {
	const char *descr;
	DType type;
	size_t size;
} dtypes[] = {{"<f2", DT_F16, 2}, {"<f4", DT_F32, 4}, {"<i4", DT_I32, 4}, {"<i8", DT_I64, 8}};

const char *dtype_name(DType t)
{
	static const char *names[] = {"float16", "float32", "int32", "int64"};
	return names[t];
}

static size_t dtype_size(DType t) { return dtypes[t].size; }

/* Finds 'key': in the header dict and returns a pointer just after the colon. */
static const char *dict_value(const char *hdr, const char *key)
{
	char quoted[32];
	snprintf(quoted, sizeof quoted, "'%s'", key);
	const char *p = strstr(hdr, quoted);
	if (!p)
		return NULL;
	p = strchr(p + strlen(quoted), ':');
	return p ? p + 1 : NULL;
}

int npy_parse(const void *bytes, size_t len, const char *path, Npy *out, char *err, size_t errlen)
{
	const unsigned char *b = bytes;
	out->ndim = 0;
	if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
		snprintf(err, errlen, "%s: not a .npy file (%s)", path, len < 10 ? "too short" : "bad magic");
		return -1;
	}
	size_t hlen, hstart;
	if (b[6] == 1) {
		hlen = b[8] | (size_t)b[9] << 8;
		hstart = 10;
	} else if (b[6] == 2 || b[6] == 3) {
		if (len < 12)
			goto truncated;
		hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
		hstart = 12;
	} else {
		snprintf(err, errlen, "%s: unsupported .npy version %d", path, b[6]);
		return -1;
	}
	if (hlen > 65536 || hstart + hlen > len)
		goto truncated;
	char *hdr = strndup((const char *)b + hstart, hlen);
	if (!hdr) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	const char *descr = dict_value(hdr, "descr"), *order = dict_value(hdr, "fortran_order"),
		   *shape = dict_value(hdr, "shape");
	int ok = descr && order && shape;
	if (!ok)
		snprintf(err, errlen, "%s: malformed .npy header", path);
	if (ok) {
		while (*descr == ' ')
			descr++;
		ok = 0;
		for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes && strlen(descr) >= 5; i++)
			if (!strncmp(descr + 1, dtypes[i].descr, 3) && descr[4] == descr[0]) {
				out->dtype = dtypes[i].type;
				ok = 1;
			}
		if (!ok)
			snprintf(err, errlen, "%s: unsupported dtype %.8s (use float16, float32, int32 or int64, little-endian)",
				 path, descr);
	}
	if (ok && strncmp(order + strspn(order, " "), "False", 5) != 0) {
		snprintf(err, errlen, "%s: Fortran-ordered arrays are not supported (save a contiguous array)", path);
		ok = 0;
	}
	if (ok) {
		const char *p = shape + strspn(shape, " ");
		if (*p++ != '(') {
			snprintf(err, errlen, "%s: malformed shape in .npy header", path);
			ok = 0;
		}
		while (ok && *p && *p != ')') {
			char *end;
			errno = 0;
			long long v = strtoll(p, &end, 10);
			if (end == p || v < 0 || errno == ERANGE || out->ndim == 4) {
				snprintf(err, errlen, "%s: malformed or unsupported shape in .npy header", path);
				ok = 0;
				break;
			}
			out->shape[out->ndim++] = v;
			p = end + strspn(end, " ,");
		}
	}
	free(hdr);
	if (!ok)
		return -1;
	/* the element count and byte size must fit in size_t before they are compared with
	 * the file: a shape like (2^62, 8) would otherwise wrap to a small number */
	size_t count = 1;
	for (int i = 0; i < out->ndim; i++)
		if (__builtin_mul_overflow(count, (size_t)out->shape[i], &count))
			goto too_big;
	if (__builtin_mul_overflow(count, dtype_size(out->dtype), &out->nbytes))
		goto too_big;
	if (out->nbytes > len - hstart - hlen)
		goto truncated;
	out->data = b + hstart + hlen;
	return 0;
too_big:
	snprintf(err, errlen, "%s: the shape in the .npy header describes more bytes than any file can hold", path);
	return -1;
truncated:
	snprintf(err, errlen, "%s: truncated .npy file (the header promises more data than the file holds)", path);
	return -1;
}

int npy_load(const char *path, Npy *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < 10) {
		snprintf(err, errlen, "%s: not a .npy file (too short)", path);
		close(fd);
		return -1;
	}
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
		return -1;
	}
	out->map = map;
	out->map_len = (size_t)st.st_size;
	if (npy_parse(map, out->map_len, path, out, err, errlen) != 0) {
		munmap(out->map, out->map_len);
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

void npy_free(Npy *a)
{
	if (a->map)
		munmap(a->map, a->map_len);
	memset(a, 0, sizeof *a);
}

int npy_save(const char *path, DType dtype, int ndim, const int64_t *shape, const void *data, char *err, size_t errlen)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", dtypes[dtype].descr);
	size_t count = 1;
	for (int i = 0; i < ndim; i++) {
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld,%s", (long long)shape[i], i + 1 < ndim ? " " : "");
		count *= (size_t)shape[i];
	}
	if (ndim > 1)
		n--; /* (3, 4) rather than (3, 4,) */
	n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
	size_t total = 10 + (size_t)n + 1;
	size_t pad = (64 - total % 64) % 64; /* header padded to 64 bytes, ends in '\n' */
	OutFile o;
	if (out_open(&o, path, err, errlen) != 0)
		return -1;
	FILE *f = o.f;
	unsigned short hl = (unsigned short)(n + pad + 1);
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	fputc(hl & 0xff, f);
	fputc(hl >> 8, f);
	fwrite(hdr, 1, (size_t)n, f);
	for (size_t i = 0; i < pad; i++)
		fputc(' ', f);
	fputc('\n', f);
	fwrite(data, dtype_size(dtype), count, f);
	return out_close(&o, err, errlen);
}

int out_open(OutFile *o, const char *path, char *err, size_t errlen)
{
	o->path = path;
	o->f = NULL;
	if (asprintf(&o->tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->f = fopen(o->tmp, "wb");
	if (!o->f) {
		snprintf(err, errlen, "cannot write %s: %s", o->tmp, strerror(errno));
		free(o->tmp);
		return -1;
	}
	return 0;
}

int out_close(OutFile *o, char *err, size_t errlen)
{
	int bad = ferror(o->f);
	if (fclose(o->f) != 0 || bad || rename(o->tmp, o->path) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", o->path, strerror(errno ? errno : EIO));
		unlink(o->tmp);
		free(o->tmp);
		return -1;
	}
	free(o->tmp);
	return 0;
}

float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
	if (exp == 0) {
		if (mant == 0) {
			bits = sign;
		} else { /* subnormal: renormalise */
			exp = 127 - 15 + 1;
			while (!(mant & 0x400)) {
				mant <<= 1;
				exp--;
			}
			bits = sign | exp << 23 | (mant & 0x3ff) << 13;
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000 | mant << 13;
	} else {
		bits = sign | (exp + 127 - 15) << 23 | mant << 13;
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t float_to_half(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
	uint32_t mant = x & 0x7fffff;
	if (((x >> 23) & 0xff) == 0xff)
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp);
		uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t half = sign | (uint32_t)exp << 10 | mant >> 13, rem = mant & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
		half++; /* round to nearest even; a carry rolls into the exponent correctly */
	return (uint16_t)half;
}
