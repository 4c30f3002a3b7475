/* bfr-gateway - placeholder until the daemon is wired. */
int main(void)
{
	return 1;
}
