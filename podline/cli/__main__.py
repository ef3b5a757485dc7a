from podline.cli.main import main

main()
