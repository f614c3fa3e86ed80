/* RP2040 only: route single-precision soft-float arithmetic to the boot ROM's
 * fast float routines, as pico-sdk's pico_float does.
 *
 * Link with -Wl,--wrap=__aeabi_fadd,--wrap=__aeabi_fsub,--wrap=__aeabi_frsub,
 * --wrap=__aeabi_fmul,--wrap=__aeabi_fdiv and call sm_rom_float_init() once at
 * start-up.  The ROM functions (RP2040 datasheet 2.8.3.2, table "SF") take and
 * return floats in core registers, like the __aeabi_ routines they replace.
 * Everything else (comparisons, conversions, libm's expf/erff/sqrtf, which call
 * the wrapped add/mul/div) stays libgcc/newlib.
 */
#include <stdint.h>

typedef float (*sm_ff2)(float, float);
typedef void *(*sm_rom_lookup_fn)(const uint16_t *table, uint32_t code);

static const sm_ff2 *sm_sf_table;

void sm_rom_float_init(void)
{
    /* boot ROM: 0x16 = u16 pointer to the data table, 0x18 = u16 pointer to rom_table_lookup */
    uintptr_t rom = 0x16;
    __asm volatile("" : "+r"(rom)); /* the ROM lives at address 0: hide the constant from -Warray-bounds */
    const uint16_t *data_table = (const uint16_t *)(uintptr_t)((const uint16_t *)rom)[0];
    sm_rom_lookup_fn lookup = (sm_rom_lookup_fn)(uintptr_t)((const uint16_t *)rom)[1];
    sm_sf_table = (const sm_ff2 *)lookup(data_table, (uint32_t)'S' | (uint32_t)'F' << 8);
}

float __wrap___aeabi_fadd(float a, float b) { return sm_sf_table[0](a, b); }
float __wrap___aeabi_fsub(float a, float b) { return sm_sf_table[1](a, b); }
float __wrap___aeabi_frsub(float a, float b) { return sm_sf_table[1](b, a); }
float __wrap___aeabi_fmul(float a, float b) { return sm_sf_table[2](a, b); }
float __wrap___aeabi_fdiv(float a, float b) { return sm_sf_table[3](a, b); }
