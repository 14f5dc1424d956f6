from fakellm.server import main

main()
