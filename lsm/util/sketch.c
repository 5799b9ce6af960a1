/*
 * sketch.c - the distinct-key estimate of a sketch (see sketch.h).
 */
#include "util/sketch.h"

#include <math.h>

bool sketch_valid(const uint8_t *regs, size_t len)
{
	if (len != SKETCH_REGS)
		return false;
	for (size_t j = 0; j < len; j++)
		if (regs[j] > SKETCH_MAX_RANK)
			return false;
	return true;
}

double sketch_estimate(const uint8_t *regs)
{
	const double m = SKETCH_REGS;
	double sum = 0, est;
	unsigned zeros = 0;

	for (uint32_t j = 0; j < SKETCH_REGS; j++) {
		sum += ldexp(1.0, -(int)regs[j]);
		zeros += regs[j] == 0;
	}
	/* The harmonic mean of 2^rank over the registers, scaled by the
	 * bias constant for m registers. */
	est = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
	/* Few keys: most registers still empty; count the empty ones
	 * instead (linear counting), which is exact in the limit. */
	if (est <= 2.5 * m && zeros)
		est = m * log(m / zeros);
	return est;
}
