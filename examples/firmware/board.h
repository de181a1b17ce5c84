/* board.h - the little that examples/firmware/main.c needs from a board: a byte output, a
   tick counter, an exit. board_mps2.c implements it on QEMU's mps2-an386, board_host.c on a
   desktop (so the same main.c runs on both and their outputs can be compared). */
#ifndef FW_BOARD_H
#define FW_BOARD_H
#include <stddef.h>
#include <stdint.h>

void board_init(void);
void board_putc(char c);
/* Free-running ticks since board_init (wraps at 2^32). On mps2 the timer runs at 25 MHz of
   QEMU's virtual clock; under `-icount shift=0` that clock advances exactly 1 ns per executed
   instruction, so one tick is BOARD_INSNS_PER_TICK instructions. 0 when the board has none. */
uint32_t board_ticks(void);
#define BOARD_INSNS_PER_TICK 40u
/* Spins through n iterations of a two-instruction loop (subs; bne): 2n instructions, to check
   the tick-to-instruction factor. */
void board_spin(uint32_t n);
/* Deepest stack use so far in bytes (the stack is painted at reset); 0 if unknown. */
size_t board_stack_used(void);
/* Stops: under QEMU via semihosting, with exit status 0 for code 0, 1 otherwise. */
void board_exit(int code);
#endif
